"""The model's special times, in picoseconds, declared once for every module of the machine
(numba compiles them in as constants).

- ``NEVER``: a time that never comes (a stop time of "no event", the clock of nothing).
- ``PARKED``: the clock of a thread the OS holds (inside a fault handler or a system call):
  above every real time, so the replay loop never picks it, and below ``NEVER``.
- ``LONG_AGO``: the time of an event that never happened (a bank never activated, no write
  yet): far enough in the past that every timing constraint measured from it is met.
"""

import numpy as np

NEVER = np.int64(1) << np.int64(62)
PARKED = 1 << 60
LONG_AGO = -(1 << 40)
