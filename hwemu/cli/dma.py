"""Subcommands of hwemu.dma (registered by hwemu.cli): ``dma calibrate`` and ``dma cost``."""

from __future__ import annotations

import argparse
import sys

from hwemu.errors import HwemuError

CALIBRATE_HELP = """\
Run the page_copy_dma RTL under Icarus Verilog (with cocotb) over a grid of memory read
latencies x MAX_OUTSTANDING x DATA_WIDTH, time each copy in clock cycles (descriptor accepted
to status valid) and print it next to the cycle model's prediction with the error in percent.
The RTL is compiled once per (DATA_WIDTH, MAX_OUTSTANDING) pair; all latencies of a pair run
in one simulation. Needs iverilog and the 'rtl' extra (cocotb). Exit status 1 if any point is
off by more than --tolerance percent.

example:
  hwemu dma calibrate
  hwemu dma calibrate --data-widths 64,256 --outstanding 1,2,8 --latencies 1,50,200 --json
"""

COST_HELP = """\
Print what the cycle model says an offloaded copy costs: cycles, time and throughput, and
which part of the pipeline limits it (bandwidth, outstanding reads, buffer, write responses).

example:
  hwemu dma cost --pages 1 --page-size 2MiB --mem-latency 90ns --clock 1GHz
  hwemu dma cost --pages 8 --data-width 256 --outstanding 8 --mem-latency 120 --json
"""


def _int_list(text: str) -> list[int]:
    try:
        vals = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected comma-separated integers") from None
    if not vals:
        raise argparse.ArgumentTypeError("expected at least one value")
    return vals


def register(sub) -> None:
    """Add ``hwemu dma ...`` to the top-level parser."""
    p = sub.add_parser("dma", help="the page-copy DMA engine: RTL calibration and cost model",
                       description="The page-copy DMA engine (rtl/page_copy_dma.v) and its "
                                   "cycle model. See docs/dma.md.")
    dsub = p.add_subparsers(dest="dma_command", metavar="DMA_COMMAND",
                            parser_class=type(p))
    p.set_defaults(func=lambda args: (p.print_help(sys.stderr), 2)[1])

    c = dsub.add_parser("calibrate", help="measure the RTL against the cycle model",
                        description=CALIBRATE_HELP,
                        formatter_class=argparse.RawDescriptionHelpFormatter)
    c.add_argument("--data-widths", type=_int_list, default=[64, 128, 256],
                   metavar="LIST", help="AXI data widths in bits (default 64,128,256)")
    c.add_argument("--outstanding", type=_int_list, default=[1, 4], metavar="LIST",
                   help="MAX_OUTSTANDING values (default 1,4)")
    c.add_argument("--latencies", type=_int_list, default=[1, 20, 60, 150], metavar="LIST",
                   help="memory read latencies in cycles (default 1,20,60,150)")
    c.add_argument("--pages", type=_int_list, default=[2], metavar="LIST",
                   help="pages per copy (default 2)")
    c.add_argument("--burst-len", type=int, default=16, help="MAX_BURST_LEN (default 16)")
    c.add_argument("--write-latency", type=int, default=1,
                   help="memory write-response latency in cycles (default 1)")
    c.add_argument("--tolerance", type=float, default=2.0,
                   help="largest acceptable model error in percent (default 2)")
    c.add_argument("--build-dir", default=None,
                   help="keep the builds and simulation logs here (default: a temporary "
                        "directory, removed afterwards)")
    c.add_argument("--json", action="store_true", help="print the points as JSON")
    c.set_defaults(func=_calibrate)

    k = dsub.add_parser("cost", help="model cost of one offloaded page copy",
                        description=COST_HELP,
                        formatter_class=argparse.RawDescriptionHelpFormatter)
    k.add_argument("--pages", type=int, default=1, help="pages in the batch (default 1)")
    k.add_argument("--page-size", default="4KiB", help="page size, a multiple of 4KiB "
                                                       "(default 4KiB; 2MiB for a huge page)")
    k.add_argument("--data-width", type=int, default=128, help="DATA_WIDTH (default 128)")
    k.add_argument("--burst-len", type=int, default=16, help="MAX_BURST_LEN (default 16)")
    k.add_argument("--outstanding", type=int, default=4, help="MAX_OUTSTANDING (default 4)")
    k.add_argument("--clock", default="1GHz", help="engine clock (default 1GHz)")
    k.add_argument("--mem-latency", default="100",
                   help="memory read latency: cycles (a number) or a time such as 90ns "
                        "(default 100 cycles)")
    k.add_argument("--json", action="store_true", help="print the result as JSON")
    k.set_defaults(func=_cost)


def _calibrate(args) -> int:
    from pathlib import Path

    from hwemu.cli.output import print_json
    from hwemu.dma.calibrate import calibrate

    for name in ("latencies", "outstanding", "pages"):
        if min(getattr(args, name)) < 1:
            raise HwemuError(f"--{name}: values must be >= 1")
    if args.write_latency < 1:
        raise HwemuError("--write-latency: must be >= 1")
    for dw in args.data_widths:
        if dw not in (64, 128, 256):
            raise HwemuError(f"--data-widths: {dw}: must be 64, 128 or 256")
    if not 1 <= args.burst_len <= 256:
        raise HwemuError(f"--burst-len: {args.burst_len}: must be 1..256")
    build_root = Path(args.build_dir) if args.build_dir else None
    import logging

    from hwemu.dma import rtl

    rtl.LOG_LEVEL = logging.ERROR
    if build_root is not None and build_root.exists() and not build_root.is_dir():
        raise HwemuError(f"--build-dir: {build_root}: not a directory")

    bar = None
    progress = None
    if sys.stderr.isatty():
        from tqdm import tqdm

        bar = tqdm(total=len(args.data_widths) * len(args.outstanding), file=sys.stderr,
                   unit="build", desc="calibrate")
        started = 0

        def progress(msg: str) -> None:
            # called as each build starts: the previous one is done
            nonlocal started
            if started:
                bar.update(1)
            started += 1
            bar.set_postfix_str(msg)
    try:
        points = calibrate(args.data_widths, args.outstanding, args.latencies, args.pages,
                           burst_len=args.burst_len, write_latency=args.write_latency,
                           build_root=build_root, progress=progress)
    finally:
        if bar is not None:
            bar.update(bar.total - bar.n)
            bar.close()
    worst = max(abs(p["error_pct"]) for p in points)
    if args.json:
        print_json({"points": points, "max_abs_error_pct": worst,
                    "tolerance_pct": args.tolerance})
    else:
        import pandas as pd

        df = pd.DataFrame(points)
        df = df[["data_width", "max_outstanding", "burst_len", "mem_latency", "pages",
                 "rtl_cycles", "model_cycles", "error_pct", "rtl_bytes_per_cycle", "bound"]]
        with pd.option_context("display.width", 200, "display.max_rows", None):
            print(df.to_string(index=False))
        print(f"\n{len(points)} points, largest model error {worst:.3f}% "
              f"(tolerance {args.tolerance}%)")
    sys.stdout.flush()
    if worst > args.tolerance:
        print(f"hwemu: model error {worst:.3f}% exceeds --tolerance {args.tolerance}%",
              file=sys.stderr)
        return 1
    return 0


def _cost(args) -> int:
    from hwemu.cli.output import print_json
    from hwemu.dma.model import (DmaParams, binding_bound, copy_cycles,
                                 steady_bytes_per_cycle)
    from hwemu.units import parse_freq_hz, parse_size, parse_time_ps

    page_bytes = parse_size(args.page_size, "--page-size")
    clock_hz = int(parse_freq_hz(args.clock, "--clock"))
    if args.pages < 1:
        raise HwemuError("--pages: must be >= 1")
    if page_bytes <= 0 or page_bytes % 4096:
        raise HwemuError(f"--page-size: {args.page_size}: must be a multiple of 4KiB")
    params = DmaParams(data_width=args.data_width, burst_len=args.burst_len,
                       max_outstanding=args.outstanding, clock_hz=clock_hz)
    period_ps = 10**12 / clock_hz
    lat_text = args.mem_latency.strip()
    if lat_text.isdigit():
        lat = int(lat_text)
    else:
        lat_ps = parse_time_ps(lat_text, "--mem-latency")
        lat = max(1, -(-lat_ps * clock_hz // 10**12))
    if lat < 1:
        raise HwemuError("--mem-latency: must be at least 1 cycle")
    small_pages = args.pages * (page_bytes // 4096)
    cycles = copy_cycles(small_pages, params, lat)
    total = small_pages * 4096
    res = {
        "pages": args.pages, "page_bytes": page_bytes, "bytes": total,
        "data_width": params.data_width, "burst_len": params.burst_len,
        "max_outstanding": params.max_outstanding, "fifo_depth": params.depth,
        "clock_hz": clock_hz, "mem_latency_cycles": lat,
        "cycles": cycles, "time_ps": round(cycles * period_ps),
        "bytes_per_cycle": round(total / cycles, 3),
        "steady_bytes_per_cycle": round(steady_bytes_per_cycle(params, lat), 3),
        "bandwidth_GBps": round(total / (cycles * period_ps) * 1000, 3),
        "bound": binding_bound(params, lat),
    }
    if args.json:
        print_json(res)
    else:
        from hwemu.cli.output import count, duration, size

        r = res
        print(f"copy of {count(r['pages'])} x {size(r['page_bytes'])} page"
              f"{'s' if r['pages'] != 1 else ''} ({size(r['bytes'])}) by a "
              f"{r['data_width']}-bit engine at {r['clock_hz'] / 1e9:g} GHz")
        print(f"  engine          bursts of {r['burst_len']} beats, {r['max_outstanding']} "
              f"outstanding, FIFO {r['fifo_depth']} beats")
        print(f"  memory latency  {count(r['mem_latency_cycles'])} cycles")
        print(f"  copy time       {count(r['cycles'])} cycles ({duration(r['time_ps'] / 1000)})")
        print(f"  throughput      {r['bytes_per_cycle']:.3f} bytes/cycle, "
              f"{r['bandwidth_GBps']:.3f} GB/s (steady state "
              f"{r['steady_bytes_per_cycle']:.3f} bytes/cycle)")
        print(f"  bound by        {r['bound']}")
    return 0
