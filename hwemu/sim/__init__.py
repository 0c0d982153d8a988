"""Where the hardware and the OS meet: the only package that imports both ``hwemu.machine``
and ``hwemu.linux``.

- ``hardware``: the adapter that implements the OS model's ``Hardware`` protocol on the
  machine timing model, and the observer that mirrors the kernel's page tables into it.
- ``cosim``: the co-simulation that replays a trace on the machine with the OS model, the
  schedule and a policy (``hwemu run --policy``/``--schedule``).
- ``experiment``: one cell of a policy comparison (used by ``compare`` and ``sweep``).
- ``bench_migrate``: the move_pages microbenchmark (``hwemu bench migrate``).
"""
