"""Subcommands of hwemu.report (registered by hwemu.cli):

* ``hwemu compare``: run policies side by side on traces and machines, write the report
  (``--suite``: a study suite, recorded where missing and run on Dask; hwemu.report.suite);
* ``hwemu sweep``: a TOML-described cross product on Dask, resumable, same report.
"""

from __future__ import annotations

import argparse

COMPARE_HELP = """\
Run each policy on each trace and machine (one cell per trace x machine x policy) and compare
them against the 'none' baseline (first-touch placement, nothing migrates), which is always run
even if not listed. Prints the results table and, with --out, writes DIR/results.csv,
results.md, report.html (self-contained, figures embedded), figures/*.png, stats/*.parquet
(each cell's raw statistics) and cells/*.zip (each cell's complete result). See docs/reports.md
for every column, the figures and the break-even formula.

With no --machine, --trace or --policy it runs the bundled demo.

With --suite NAME it runs a study suite (docs/study.md, "Running a suite"): the bundled
traces/suite/suites/NAME.toml (tiny, study) or a suite TOML file. Each workload whose trace
--traces DIR/WORKLOAD-SCALE.parquet is missing is recorded first (traces/suite/record.py, one
at a time); then the cells run on Dask as in 'hwemu sweep' (a local cluster of --workers
processes, or --scheduler), each written to --out DIR/cells as it finishes, so running the
same command again resumes. The machines, policies, seeds and parameters come from the suite
file.

policies: none, manual (needs --schedule), autonuma, tpp, hotness, nomad, oracle

examples:
  hwemu compare --out demo-report
  hwemu compare --machine skx-2s --trace traces/matmul.parquet \\
      --policy autonuma --policy tpp --out out/matmul --json
  hwemu compare --machine skx-2s --trace traces/sort.parquet --policy autonuma \\
      --param autonuma:scan_period_min=200us --out out/sort
  hwemu compare --suite tiny                  # records into suite-traces/, report in suite-tiny/
  hwemu compare --suite study --traces /data/suite-traces --out study-out --workers 8
"""

SWEEP_HELP = """\
Run the cross product of machines, traces, policies, seeds and [params] values described in
SWEEP.toml on Dask: a local cluster of --workers processes (default 2), or the cluster whose
scheduler is at --scheduler. Each cell is written to DIR/cells/<cell-id>.zip as soon as it
finishes; re-running the same command skips finished cells (resume), and a worker that dies
loses only the cell it was running (Dask reschedules it). The report in DIR is the one of
'hwemu compare'. See docs/sweep.md for the TOML format.

example SWEEP.toml:
  machines = ["skx-2s", "skx-2s-cxl"]
  traces   = ["traces/matmul.parquet", "traces/sort.parquet"]   # relative to this file
  policies = ["autonuma", "tpp", "hotness"]
  seeds    = [0, 1]
  [params.autonuma]                                            # autonuma's cells only
  scan_period_min = ["200us", "1ms"]

examples:
  hwemu sweep sweep.toml --out sweep-out --workers 2
  hwemu sweep sweep.toml --out /shared/sweep-out --scheduler tcp://head:8786 --json
"""


def register(sub) -> None:
    c = sub.add_parser("compare", help="compare placement/migration policies, write a report",
                       description=COMPARE_HELP,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    c.add_argument("--machine", action="append", metavar="M",
                   help="machine preset or TOML file (repeatable; default: the demo's)")
    c.add_argument("--trace", action="append", metavar="T", help="trace file (repeatable)")
    c.add_argument("--policy", action="append", metavar="P",
                   help="policy (repeatable; default: the demo's policies)")
    c.add_argument("--schedule", metavar="S", help="schedule TOML file (docs/schedule.md)")
    c.add_argument("--param", action="append", default=[], metavar="[POLICY:]KEY=VALUE",
                   help="policy parameter (repeatable): KEY=VALUE for every listed policy but "
                        "the baseline, POLICY:KEY=VALUE for one policy ('hwemu policies')")
    c.add_argument("--seed", type=int, default=None, metavar="N", help="random seed (default 0)")
    c.add_argument("--out", metavar="DIR",
                   help="write the report into DIR (with --suite: default suite-NAME)")
    c.add_argument("--suite", metavar="NAME",
                   help="run a study suite: a bundled one (tiny, study) or a suite TOML file")
    c.add_argument("--traces", metavar="DIR",
                   help="with --suite: where the traces are, or are recorded to "
                        "(default suite-traces)")
    g = c.add_mutually_exclusive_group()
    g.add_argument("--workers", type=int, default=None, metavar="N",
                   help="processes running cells at once (default: the CPUs of this machine, "
                        "at most 8; each takes about 1 GB on the demo; with --suite: the local "
                        "Dask cluster's workers, default 2); results do not depend on it")
    g.add_argument("--scheduler", metavar="ADDRESS",
                   help="with --suite: use the Dask cluster at this scheduler address instead")
    c.add_argument("--json", action="store_true", help="print the rows as JSON")
    c.add_argument("--quiet", action="store_true", help="no progress bar")
    c.set_defaults(func=_compare)

    s = sub.add_parser("sweep", help="run a TOML-described policy sweep on Dask (resumable)",
                       description=SWEEP_HELP,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    s.add_argument("file", metavar="SWEEP.toml", help="sweep description")
    s.add_argument("--out", metavar="DIR", required=True, help="report and cell directory")
    g = s.add_mutually_exclusive_group()
    g.add_argument("--workers", type=int, default=None, metavar="N",
                   help="worker processes of the local cluster (default 2)")
    g.add_argument("--scheduler", metavar="ADDRESS",
                   help="use the Dask cluster at this scheduler address instead")
    s.add_argument("--json", action="store_true", help="print the rows as JSON")
    s.add_argument("--quiet", action="store_true", help="no progress bar")
    s.set_defaults(func=_sweep)


def _print_table(df) -> None:
    from hwemu.report.table import to_markdown

    print(to_markdown(df), end="")


def _compare(args) -> int:
    from hwemu.cli.output import print_json
    from hwemu.errors import HwemuError
    from hwemu.report.compare import compare
    from hwemu.report.table import json_rows

    if args.suite is not None:
        return _compare_suite(args)
    for opt in ("traces", "scheduler"):
        if getattr(args, opt) is not None:
            raise HwemuError(f"--{opt} goes with --suite")
    import os

    # each worker holds a machine model (about 1 GB for the demo's cells): at most 8 by default
    workers = _workers(args, min(os.cpu_count() or 1, 8))
    if args.seed is None:
        args.seed = 0
    if args.seed < 0:
        raise HwemuError(f"--seed {args.seed}: must be >= 0")
    params: dict = {}
    for item in args.param:
        key, eq, value = item.partition("=")
        pol, colon, name = key.rpartition(":")
        if not eq or not name or (colon and not pol):
            raise HwemuError(f"--param {item!r}: expected KEY=VALUE or POLICY:KEY=VALUE")
        if pol:
            params.setdefault(pol, {})[name] = value
        else:
            params[name] = value
    df = compare(machines=args.machine, traces=args.trace, policies=args.policy,
                 schedule=args.schedule, seed=args.seed, out=args.out, quiet=args.quiet,
                 params=params or None, command=args.command_line, workers=workers)
    if args.json:
        print_json({"rows": json_rows(df)})
    else:
        _print_answer(df)
        if args.out:
            print(f"\nfull table: {args.out}/results.md (and results.csv); "
                  f"report: {args.out}/report.html")
    return 0


def _compare_suite(args) -> int:
    from hwemu.cli.output import print_json
    from hwemu.errors import HwemuError
    from hwemu.report.suite import run_suite

    for opt, given in (("trace", args.trace), ("machine", args.machine),
                       ("policy", args.policy), ("schedule", args.schedule),
                       ("param", args.param), ("seed", args.seed is not None)):
        if given:
            raise HwemuError(f"--suite and --{opt} do not go together (the suite file gives "
                             "the traces, machines, policies, schedules, seeds and parameters)")
    workers = _workers(args, 2)
    suite, recorded, res, figures = run_suite(args.suite, args.traces or "suite-traces", args.out,
                                     workers=workers, scheduler=args.scheduler,
                                     quiet=args.quiet, command=args.command_line)
    out = args.out or f"suite-{suite.name}"
    if args.json:
        print_json({"suite": suite.name, "recorded": [r["name"] for r in recorded],
                    **_sweep_json(res), "variant_figures": [str(p) for p in figures]})
    else:
        _print_answer(res.table)
        print(f"\n{res.cells} cells: {res.ran} run, {res.skipped} already done; "
              f"full table: {out}/results.md (and results.csv); report: {out}/report.html")
        for p in figures:
            print(f"variant figure: {p}")
    return 0


def _sweep_json(res) -> dict:
    """The JSON of a sweep's (or suite's) run: cells, how many ran and were skipped, rows."""
    from hwemu.report.table import json_rows

    return {"cells": res.cells, "ran": res.ran, "skipped": res.skipped,
            "rows": json_rows(res.table)}


def _workers(args, default: int) -> int:
    """--workers, or ``default`` when not given; at least 1."""
    from hwemu.errors import HwemuError

    workers = default if args.workers is None else args.workers
    if workers < 1:
        raise HwemuError(f"--workers {workers}: must be at least 1")
    return workers


def _print_answer(df) -> None:
    """The answer first: a ranked summary per workload, then a table that fits 100 columns."""
    from hwemu.report.table import compact_table, summary_lines

    print("\n".join(summary_lines(df)))
    print()
    print(compact_table(df), end="")


def _sweep(args) -> int:
    from hwemu.cli.output import print_json
    from hwemu.report.sweep import load_sweep, run_sweep

    workers = _workers(args, 2)
    spec = load_sweep(args.file)
    res = run_sweep(spec, args.out, workers=workers, scheduler=args.scheduler,
                    quiet=args.quiet, command=args.command_line)
    if args.json:
        print_json(_sweep_json(res))
    else:
        _print_table(res.table)
        print(f"{res.cells} cells: {res.ran} run, {res.skipped} already done; "
              f"report: {args.out}/report.html")
    return 0
