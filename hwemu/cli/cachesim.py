"""Subcommands of hwemu.cachesim (registered by hwemu.cli): ``hwemu cachesim``."""

from __future__ import annotations

import argparse
import sys

DESCRIPTION = """\
Replay a trace through an I1 / D1 / LL cache hierarchy with exactly the semantics of
Valgrind 3.19's cachegrind (LRU, write-allocate, LL looked up only on an L1 miss and shared by
instructions and data, a line-straddling access counted once, a modify counted as one read),
and print cachegrind's summary: Ir I1mr ILmr Dr D1mr DLmr Dw D1mw DLmw and miss rates.

Each cache is SIZE,ASSOC,LINE_SIZE in bytes, ways, bytes, as cachegrind's options. The number
of sets (SIZE / (ASSOC * LINE_SIZE)) must be a power of two and LINE_SIZE a power of two >= 16.
Omitted caches default to I1 = D1 = 32768,8,64 and LL = 8388608,16,64 (cachegrind would read
the host's CPUID instead; pass all three to compare with a cachegrind run).

example:
  hwemu cachesim ls.parquet --I1 32768,8,64 --D1 32768,8,64 --LL 8388608,16,64
  hwemu cachesim ls.parquet --D1 16384,4,64 --json
  hwemu cachesim ls.parquet --policy srrip          what SRRIP would change (not cachegrind)
  hwemu cachesim ls.parquet --policy fifo           first-in first-out replacement
"""


def register(sub) -> None:
    """Add ``hwemu cachesim`` to the top-level parser."""
    p = sub.add_parser("cachesim", help="cachegrind-exact I1/D1/LL cache simulation of a trace",
                       description=DESCRIPTION,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("trace", metavar="TRACE", help="native hwemu trace file (.parquet)")
    p.add_argument("--I1", metavar="S,A,L", default=None,
                   help="L1 instruction cache: size, associativity, line size (default 32768,8,64)")
    p.add_argument("--D1", metavar="S,A,L", default=None,
                   help="L1 data cache: size, associativity, line size (default 32768,8,64)")
    p.add_argument("--LL", metavar="S,A,L", default=None,
                   help="last-level cache: size, associativity, line size (default 8388608,16,64)")
    p.add_argument("--policy", choices=("lru", "fifo", "random", "srrip", "plru"), default="lru",
                   help="replacement policy of all three caches (default lru, which is "
                        "cachegrind's; the others are hwemu extensions)")
    p.add_argument("--seed", type=int, default=0,
                   help="seed of the random policy (default 0; same seed, same result)")
    p.add_argument("--json", action="store_true", help="print the result as JSON on stdout")
    p.set_defaults(func=_cmd_cachesim)


def _cmd_cachesim(args) -> int:
    from hwemu.cachesim import sim
    from hwemu.cli.output import print_json
    from hwemu.traces.fold import trailing_insts
    from hwemu.traces.format import TraceReader

    # Geometry is validated (by the constructor) before the trace is opened.
    s = sim.CachegrindSim(args.I1 or sim.DEFAULT_I1, args.D1 or sim.DEFAULT_D1,
                          args.LL or sim.DEFAULT_LL, policy=args.policy, seed=args.seed)
    reader = TraceReader(args.trace)
    for chunk in sim._iter_source(args.trace, progress=sys.stderr.isatty()):
        s.feed(chunk)
    s.add_instructions(trailing_insts(reader.meta))   # 0 unless a data-only trace
    result = s.result()
    result["trace"] = str(args.trace)
    result["program"] = reader.meta.program
    if args.json:
        print_json(result)
    else:
        print(sim.format_summary(result, {"Trace": args.trace, "Command": reader.meta.program}))
    return 0
