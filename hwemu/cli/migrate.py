"""Subcommands of hwemu.linux (registered by hwemu.cli):

* ``hwemu bench migrate``: the move_pages microbenchmark on the parametric hardware.
* ``hwemu schedule check``: validate a schedule file and summarise it.
"""

from __future__ import annotations

import argparse
import sys

from hwemu.errors import HwemuError
from hwemu.cli.output import HelpFormatter

BENCH_HELP = """\
Migrate N pages of one process from node 0 to node 1 with move_pages(2), running every step of
the kernel's migration protocol on the modelled machine, and report the throughput, the time
per page, the share of the time spent copying, and the time of every protocol step.

The process first touches its pages from a thread on CPU 0 (node 0); that thread then calls
move_pages(). With --threads > 1 the process also runs on other CPUs, so every unmapped page
needs a TLB shootdown: batched (one IPI round per batch of up to 512 pages, Linux's default)
or, with --no-tlb-batch, one IPI round per page.

--hw parametric (the default) times every step with ParametricHardware, a few calibrated
numbers per machine taken from the machine's [os] and [parametric] tables: epyc-2s (2-socket
AMD EPYC 7763, the calibration target), skx-2s (2-socket Intel Xeon Skylake-SP), or any machine
TOML with one node per socket. --hw machine times them on the machine timing model
(hwemu.machine; any preset of 'hwemu machine list' or a TOML file): struct pages, PTEs and locks
go through its caches, coherence and links, the copy streams lines through its memory
controllers, TLB flushes drop entries from its TLBs. --copy dma offloads the page copy to the
DMA engine (cycle model of hwemu.dma).

examples:
  hwemu bench migrate --page-size 4KiB --pages 4096
  hwemu bench migrate --page-size 2MiB --pages 64 --copy dma --json
  hwemu bench migrate --pages 2048 --threads 2 --no-tlb-batch
  hwemu bench migrate --hw machine --machine skx-2s --pages 1024 --json
"""

SCHEDULE_HELP = """\
Parse and validate a schedule file (TOML: processes, threads and their CPUs, thread moves,
pins, system calls at given times; see docs/schedule.md) against a machine, and print what it
sets up. Errors name the file and key, exit status 2.

example:
  hwemu schedule check docs/examples/schedule.toml --machine epyc-2s
"""


def register(sub) -> None:
    b = sub.add_parser("bench", help="microbenchmarks of the OS model (bench migrate)",
                       description="Microbenchmarks of the OS model.")
    bsub = b.add_subparsers(dest="bench_command", metavar="BENCH", parser_class=type(b))
    m = bsub.add_parser("migrate", help="move_pages microbenchmark: N pages from node 0 to node 1",
                        description=BENCH_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    m.add_argument("--machine", default="epyc-2s", metavar="M",
                   help="machine preset or TOML file (default epyc-2s); --hw parametric uses its "
                        "[os] and [parametric] tables (one node per socket)")
    m.add_argument("--hw", default="parametric", choices=("parametric", "machine"),
                   help="hardware timing the kernel steps (default parametric)")
    m.add_argument("--page-size", default="4KiB", metavar="SIZE", help="4KiB or 2MiB (default 4KiB)")
    m.add_argument("--pages", type=int, default=4096, metavar="N", help="pages to move (default 4096)")
    m.add_argument("--copy", default="cpu", choices=("cpu", "dma"), help="copy engine (default cpu)")
    m.add_argument("--threads", type=int, default=1, metavar="T",
                   help="threads of the process, on CPU 0 and others alternating sockets (default 1)")
    m.add_argument("--no-tlb-batch", action="store_true",
                   help="flush the TLB page by page instead of once per batch")
    m.add_argument("--json", action="store_true", help="print the results as JSON")
    m.set_defaults(func=_bench_migrate)
    b.set_defaults(func=lambda args: (b.print_help(sys.stderr), 2)[1])

    pol = sub.add_parser(
        "policies", help="list the placement and migration policies and their parameters",
        description="List the placement policies (where a page goes on first touch) and the "
                    "migration policies (when and where pages move) that 'hwemu run --policy' "
                    "and 'hwemu compare' accept, with every parameter, its default and the "
                    "Linux setting it corresponds to (docs/policies.md).",
        epilog="examples:\n  hwemu policies\n  hwemu policies --json\n"
               "  hwemu run -m skx-2s t.parquet --policy interleave+autonuma "
               "--param scan_period_min=200us",
        formatter_class=HelpFormatter)
    pol.add_argument("--json", action="store_true", help="print the list as JSON")
    pol.set_defaults(func=_policies)

    s = sub.add_parser("schedule", help="check a schedule file (processes, threads, pins, syscalls)",
                       description="Schedule files for 'hwemu run --schedule'.")
    ssub = s.add_subparsers(dest="schedule_command", metavar="SUBCOMMAND", parser_class=type(s))
    c = ssub.add_parser("check", help="validate a schedule file and summarise it",
                        description=SCHEDULE_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    c.add_argument("file", help="schedule TOML file")
    c.add_argument("--machine", default="epyc-2s", metavar="M",
                   help="machine preset or TOML file to check CPUs and nodes against (default epyc-2s)")
    c.add_argument("--json", action="store_true", help="print the summary as JSON")
    c.set_defaults(func=_schedule_check)
    s.set_defaults(func=lambda args: (s.print_help(sys.stderr), 2)[1])


def _bench_migrate(args) -> int:
    from hwemu.cli.output import print_json
    from hwemu.sim.bench_migrate import run_bench
    from hwemu.units import MAX_PAGES, check_max, parse_size

    size = parse_size(args.page_size, "--page-size")
    if args.pages < 1:
        raise HwemuError(f"--pages: must be >= 1, got {args.pages}")
    check_max(args.pages, MAX_PAGES, "--pages", "page count")
    check_max(args.pages * size, MAX_PAGES * 4096, "--pages x --page-size", "bytes")
    bars = []
    progress = migrate_progress = None
    if sys.stderr.isatty():
        from tqdm import tqdm

        bars = [tqdm(total=args.pages, desc="faulting in", unit="page", file=sys.stderr),
                tqdm(total=args.pages, desc="migrating", unit="page", file=sys.stderr)]
        progress, migrate_progress = bars[0].update, bars[1].update
    try:
        res = run_bench(args.pages, size, args.copy, args.machine, args.threads,
                        not args.no_tlb_batch, progress=progress,
                        migrate_progress=migrate_progress, hw_kind=args.hw)
    finally:
        for bar in bars:
            bar.close()
    if args.json:
        print_json(res)
        return 0
    print(f"move_pages: {res['pages']} x {args.page_size} pages node 0 -> node 1 "
          f"({args.machine}, hw={res['hw']}, copy={res['copy']}, threads={res['threads']}, "
          f"tlb batch={'on' if res['tlb_batch'] else 'off'})")
    print(f"  moved        {res['pages_moved']}/{res['pages']} (ret {res['ret']})")
    print(f"  elapsed      {res['elapsed_ps'] / 1e6:.3f} us")
    print(f"  throughput   {res['gbps']:.2f} GB/s")
    print(f"  per page     {res['us_per_page']:.3f} us")
    print(f"  copy share   {res['copy_fraction'] * 100:.1f} %")
    print(f"  passes       {res['passes']}")
    print(f"  TLB          {res['tlb_flushes']} flushes, {res['tlb_batched_flushes']} batched, "
          f"{res['tlb_ipis']} IPIs")
    print("  step                   ns/page   share")
    for name, v in res["steps"].items():
        print(f"  {name:20s} {v['per_page_ns']:9.1f}  {v['fraction'] * 100:5.1f} %")
    return 0


def _policies(args) -> int:
    from hwemu.cli.output import print_json
    from hwemu.policies.registry import list_policies

    pols = list_policies()
    if args.json:
        print_json(pols)
        return 0
    for fam in ("placement", "migration"):
        print(f"{fam} policies:")
        for p in (p for p in pols if p["family"] == fam):
            print(f"  {p['name']:12s} {p['description']}")
            for prm in p["params"]:
                linux = f"  [Linux: {prm['linux']}]" if prm["linux"] else ""
                print(f"      {prm['name']} ({prm['kind']}, default {prm['default']}): "
                      f"{prm['description']}{linux}")
    return 0


def _machine_topology(name: str):
    """Nodes and CPUs of a machine preset or TOML file."""
    from hwemu.machine.config import load_machine

    return load_machine(name)


def _schedule_check(args) -> int:
    from hwemu.cli.output import print_json
    from hwemu.linux.schedule import load_schedule

    sched = load_schedule(args.file, _machine_topology(args.machine))
    summary = sched.summary()
    if args.json:
        print_json(summary)
        return 0
    print(f"{args.file}: valid for {args.machine}")
    for line in _schedule_lines(sched):
        print("  " + line)
    return 0


def _schedule_lines(sched) -> list[str]:
    """The schedule in words: processes, threads and their CPUs, events in time order."""
    from hwemu.cli.output import duration

    lines = []
    for p in sched.processes:
        name = f" ({p.name})" if p.name else ""
        tids = [t for t in sched.threads if t.pid == p.pid]
        maps = f", {len(p.mmaps)} mapping{'s' if len(p.mmaps) != 1 else ''}" if p.mmaps else ""
        lines.append(f"process {p.pid}{name}: {len(tids)} thread{'s' if len(tids) != 1 else ''}"
                     f"{maps}")
        for t in tids:
            lines.append(f"  thread {t.tid} on CPU {t.cpu}")
    if not sched.events:
        lines.append("no events")
    else:
        lines.append(f"{len(sched.events)} event{'s' if len(sched.events) != 1 else ''}:")
    for e in sched.events:
        args = ", ".join(f"{k.removesuffix('_ps')} {_arg(k, v)}" for k, v in e.args.items()
                         if v is not None)
        lines.append(f"  at {duration(e.at_ps / 1000):>8}  {e.action}" + (f": {args}" if args else ""))
    return lines


def _arg(key: str, value) -> str:
    """One event argument as text: addresses in hex, sizes and times in units, node lists
    as 0,1 (one repeated node as "1 (x32)"), a memory policy as its mode and nodes."""
    from hwemu.cli.output import duration, size

    if key == "addr" and isinstance(value, int):
        return f"0x{value:x}"
    if key.endswith("_ps") and isinstance(value, (int, float)):
        return duration(value / 1000)
    if key == "size" and isinstance(value, int):
        return size(value)
    if isinstance(value, (list, tuple)):
        if len(value) > 3 and len(set(value)) == 1:
            return f"{value[0]} (x{len(value)})"
        return ",".join(str(v) for v in value) or "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if hasattr(value, "mode") and hasattr(value, "nodes"):           # a Mempolicy
        return value.mode + (" " + ",".join(map(str, value.nodes)) if value.nodes else "")
    return str(value)
