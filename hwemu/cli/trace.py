"""``hwemu trace ...``: import, record, synthesise and inspect traces (docs/traces.md)."""

from __future__ import annotations

import argparse
import sys

FORMATS = ("lackey", "pin", "champsim", "csv")
SYNTH_KINDS = ("stream", "random", "chase", "strided", "phase")

TRACE_DESC = """\
Traces are hwemu's input: one record per instruction fetch (I), load (L), store (S) or
read-modify-write (M), with thread id, size, virtual address and a count of instructions
without a record of their own. The native format is zstd-compressed Parquet
(docs/trace-format.md).

examples:
  hwemu trace record --out ls.parquet -- /bin/ls /
  hwemu trace import --format lackey lackey.out.xz prog.parquet
  hwemu trace synth chase --footprint 256MiB --records 10000000 --out chase.parquet
  hwemu trace info ls.parquet
"""


def _int(text: str) -> int:
    """Integer with optional 0x prefix, '_' separators and k/M/G (x1000) suffix."""
    t = str(text).strip().replace("_", "")
    mult = 1
    if t[-1:] in ("k", "K", "M", "G"):
        mult = {"k": 10**3, "K": 10**3, "M": 10**6, "G": 10**9}[t[-1]]
        t = t[:-1]
    try:
        return int(t, 0) * mult
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None


def _size(text: str) -> int:
    from hwemu.errors import HwemuError
    from hwemu.units import parse_size

    try:
        return parse_size(text)
    except HwemuError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _summary(meta) -> str:
    rk = meta.records_by_kind
    return (f"{meta.records:,} records (I {rk['I']:,}, L {rk['L']:,}, S {rk['S']:,}, M {rk['M']:,}), "
            f"{meta.threads} thread{'s' if meta.threads != 1 else ''}")


def register(sub) -> None:
    p = sub.add_parser("trace", help="import, record, synthesise and inspect memory traces",
                       description=TRACE_DESC, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.set_defaults(func=lambda args: (p.print_help(sys.stderr), 2)[1])
    tsub = p.add_subparsers(dest="trace_command", metavar="SUBCOMMAND", parser_class=type(p))

    # import -------------------------------------------------------------------------------
    q = tsub.add_parser(
        "import", help="convert a lackey/pin/champsim/csv trace to the native format",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="""\
Convert a foreign trace into hwemu's native trace format, streaming (bounded memory).
IN may be '-' for stdin and may be gzip, xz or zstd compressed (detected by content).

formats (details in docs/traces.md):
  lackey    valgrind --tool=lackey --trace-mem=yes output ('I  04000ad0,3', ' L addr,size', S, M;
            '==pid==' lines skipped); one thread
  pin       Pin pinatrace output ('0x4005d0: R 0x7ffd1234' / W; '#' lines skipped); size 8;
            a record at a new instruction pointer counts one instruction (insts = 1)
  champsim  ChampSim binary input_instr records (64 bytes); per record an I (size 4), loads for
            nonzero source_memory, stores for nonzero destination_memory (size 8)
  csv       header line naming columns kind,addr,size[,tid][,insts] in any order; kind I/L/S/M,
            integers decimal or 0x-hex

A malformed line stops the import with its line number and text; no OUT is left behind.

example:
  hwemu trace import --format lackey lackey.log.gz ls.parquet
  xz -dc 600.perlbench_s-210B.champsimtrace.xz | hwemu trace import --format champsim - perl.parquet
""")
    q.add_argument("--format", "-f", required=True, choices=FORMATS, help="input format")
    q.add_argument("--program", default="", help="program name to store in the trace metadata")
    q.add_argument("--json", action="store_true", help="print the written trace's metadata as JSON")
    q.add_argument("input", metavar="IN", help="input file, or '-' for stdin")
    q.add_argument("output", metavar="OUT", help="native trace to write")
    q.set_defaults(func=_cmd_import)

    # record -------------------------------------------------------------------------------
    r = tsub.add_parser(
        "record", help="run a program under Valgrind and record its memory trace",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="""\
Run PROG under Valgrind and stream its trace into OUT (no text trace on disk).

The default recorder is hwtrace, hwemu's own Valgrind tool (built on first use into
$HWEMU_CACHE or ~/.cache/hwemu): it records thread ids and exactly the events cachegrind 3.19
counts (Ir = I records, Dr = L + M, Dw = S). '--tool lackey' uses Valgrind's lackey instead
(one thread id). A program that exits non-zero is an error and leaves no OUT unless
--allow-failure. Exit status, argv and working directory go into the trace metadata.

--data-only writes loads, stores and modifies only, each with the instructions its thread
executed since its previous data record in the insts column (the instruction count per
thread stays exact; instruction fetches are not simulated on replay). Recording is faster and
the trace several times smaller.

examples:
  hwemu trace record --out sort.parquet -- sort -n numbers.txt
  hwemu trace record --data-only --out gzip.parquet -- gzip -c big.txt
""")
    r.add_argument("--out", "-o", required=True, metavar="OUT", help="native trace to write")
    r.add_argument("--tool", choices=("auto", "hwtrace", "lackey"), default="auto",
                   help="recorder (default auto: hwtrace, falling back to lackey if it cannot be built)")
    r.add_argument("--allow-failure", action="store_true",
                   help="keep the trace even if PROG exits non-zero or is killed")
    r.add_argument("--valgrind-arg", action="append", default=[], metavar="ARG",
                   help="extra option for valgrind itself (repeatable), e.g. --valgrind-arg=--fair-sched=yes")
    r.add_argument("--data-only", action="store_true",
                   help="data records (L, S, M) only, with the instructions between them in insts "
                        "(no I records)")
    r.add_argument("--json", action="store_true", help="print the written trace's metadata as JSON")
    r.add_argument("command", nargs=argparse.REMAINDER, metavar="-- PROG [ARGS...]",
                   help="the program to run and its arguments")
    r.set_defaults(func=_cmd_record)

    c = tsub.add_parser(
        "convert", help="derive a data-only trace from a native trace (I records folded into insts)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="""\
Write a data-only copy of a native trace: the I records are dropped and counted into the insts
of their thread's next data record (what 'hwemu trace record --data-only' records directly).
Instructions after a thread's last data record go into the metadata (trailing_insts).

example:
  hwemu trace convert --data-only traces/gzip.parquet gzip-data.parquet
""")
    c.add_argument("--data-only", action="store_true", required=True,
                   help="fold instruction fetches into insts (the only conversion so far; required)")
    c.add_argument("--json", action="store_true", help="print the written trace's metadata as JSON")
    c.add_argument("input", metavar="IN", help="native trace to read")
    c.add_argument("output", metavar="OUT", help="native trace to write")
    c.set_defaults(func=_cmd_convert)

    b = tsub.add_parser(
        "build-tool", help="build the hwtrace Valgrind tool now (normally built on first record)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="""\
Compile hwemu's Valgrind tool (hwemu/traces/valgrind_tool/hw_main.c) against the installed
Valgrind's headers and static libraries into $HWEMU_CACHE (default ~/.cache/hwemu) and print
the directory it lives in.

example:
  hwemu trace build-tool --force
""")
    b.add_argument("--force", action="store_true", help="rebuild even if already built")
    b.add_argument("--verbose", "-v", action="store_true", help="print the compiler commands")
    b.add_argument("--json", action="store_true", help="print the result as JSON")
    b.set_defaults(func=_cmd_build_tool)

    # info ---------------------------------------------------------------------------------
    i = tsub.add_parser(
        "info", help="records by kind, threads, address range, pages, size of a trace",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="""\
Summarise a native trace by streaming through it: records by kind, instructions, threads,
address range (all records and data only), distinct 4 KiB pages, bytes on disk, source format,
program and recording metadata.

example:
  hwemu trace info traces/matmul.parquet --json
""")
    i.add_argument("trace", metavar="TRACE", help="native trace file")
    i.add_argument("--json", action="store_true", help="print the summary as JSON")
    i.set_defaults(func=_cmd_info)

    # synth --------------------------------------------------------------------------------
    s = tsub.add_parser(
        "synth", help="generate a synthetic trace (stream, random, chase, strided, phase)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="""\
Generate a synthetic data trace, bit-identical for the same options and seed.

kinds:
  stream   each thread reads its slice of the footprint sequentially (SIZE bytes at a time)
  strided  each thread reads its slice every STRIDE bytes (default: one line), wrapping
  random   GUPS-like read-modify-write (M) of uniformly random words in the whole footprint
  chase    pointer chase over a random cyclic permutation of each thread's lines
  phase    random loads/stores over the first half of the footprint, then over the second half

Threads interleave round-robin, one record each in turn; stream/strided/chase give each thread
its own footprint/threads slice, random and phase share the footprint.

example:
  hwemu trace synth random --footprint 1GiB --records 5M --threads 4 --seed 7 --out gups.parquet
""")
    s.add_argument("kind", choices=SYNTH_KINDS, help="access pattern")
    s.add_argument("--out", "-o", required=True, metavar="OUT", help="native trace to write")
    s.add_argument("--records", type=_int, default=1_000_000, metavar="N",
                   help="number of memory records (default 1000000; k/M/G suffixes allowed)")
    s.add_argument("--footprint", type=_size, default=64 << 20, metavar="SIZE",
                   help="bytes of memory touched (default 64MiB)")
    s.add_argument("--threads", type=_int, default=1, metavar="N", help="threads (default 1)")
    s.add_argument("--stride", type=_size, default=None, metavar="SIZE",
                   help="strided: bytes between accesses (default: --line)")
    s.add_argument("--line", type=_size, default=64, metavar="SIZE",
                   help="cache line size; chase node size and strided default (default 64)")
    s.add_argument("--size", type=_size, default=8, metavar="SIZE", help="bytes per access (default 8)")
    s.add_argument("--insts", type=_int, default=0, metavar="N",
                   help="non-memory instructions before each memory record (default 0)")
    s.add_argument("--seed", type=_int, default=1, metavar="N", help="random seed (default 1)")
    s.add_argument("--base", type=_int, default=0x10000000, metavar="ADDR",
                   help="first virtual address of the footprint (default 0x10000000)")
    s.add_argument("--store-fraction", type=float, default=0.25, metavar="F",
                   help="phase: fraction of records that are stores (default 0.25)")
    s.add_argument("--json", action="store_true", help="print the written trace's metadata as JSON")
    s.set_defaults(func=_cmd_synth)


def _progress(desc: str):
    from tqdm import tqdm

    return tqdm(total=None, unit=" rec", unit_scale=True, disable=not sys.stderr.isatty(),
                file=sys.stderr, desc=desc, leave=False)


def _cmd_import(args) -> int:
    from hwemu.cli.output import print_json
    from hwemu.traces.importers import import_trace

    with _progress("importing") as bar:
        meta = import_trace(args.format, args.input, args.output, program=args.program,
                            progress=bar.update)
    if args.json:
        print_json(meta.to_json())
    else:
        print(f"{args.output}: {_summary(meta)}")
    return 0


def _cmd_convert(args) -> int:
    from hwemu.cli.output import print_json
    from hwemu.traces.fold import convert_data_only

    meta = convert_data_only(args.input, args.output)
    if args.json:
        print_json(meta.to_json())
    else:
        print(f"{args.output}: {_summary(meta)}")
    return 0


def _cmd_record(args) -> int:
    from hwemu.cli.output import print_json
    from hwemu.errors import HwemuError
    from hwemu.traces.record import record_trace

    command = list(args.command)
    if command and command[0] == "--":
        command = command[1:]
    if not command:
        raise HwemuError("no program given: hwemu trace record --out OUT -- PROG [ARGS...]")
    meta = record_trace(command, args.out, tool=args.tool, allow_failure=args.allow_failure,
                        valgrind_args=args.valgrind_arg, data_only=args.data_only)
    if args.json:
        print_json(meta.to_json())
    else:
        status = (meta.extra or {}).get("exit_status")
        print(f"{args.out}: {_summary(meta)}; exit status {status}", file=sys.stderr)
    return 0


def _cmd_build_tool(args) -> int:
    from hwemu.cli.output import print_json
    from hwemu.traces.record import build_tool

    path = build_tool(force=args.force, verbose=args.verbose)
    if args.json:
        print_json({"valgrind_lib": str(path)})
    else:
        print(path)
    return 0


def _cmd_info(args) -> int:
    from hwemu.cli.output import print_json
    from hwemu.traces.info import format_info, trace_info

    info = trace_info(args.trace)
    if args.json:
        print_json(info)
    else:
        print(format_info(info))
    return 0


def _cmd_synth(args) -> int:
    from hwemu.cli.output import print_json
    from hwemu.traces.synth import synthesize

    meta = synthesize(args.kind, args.out, records=args.records, footprint=args.footprint,
                      threads=args.threads, stride=args.stride, seed=args.seed, insts=args.insts,
                      line=args.line, size=args.size, base=args.base,
                      store_fraction=args.store_fraction)
    if args.json:
        print_json(meta.to_json())
    else:
        print(f"{args.out}: {_summary(meta)}")
    return 0
