"""Subcommands of hwemu.machine: ``machine list``, ``machine show``, ``mlc`` and ``run``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from hwemu.errors import HwemuError
from hwemu.cli.output import HelpFormatter

_FMT = HelpFormatter


def register(sub) -> None:
    p = sub.add_parser(
        "machine", help="list and show machine descriptions (presets or TOML files)",
        description="Machine descriptions: presets shipped with hwemu, or TOML files that may "
                    "start from a preset with base = \"NAME\".",
        formatter_class=_FMT,
        epilog="examples:\n  hwemu machine list\n  hwemu machine show skx-2s\n"
               "  hwemu machine show my.toml --json\n  hwemu machine show --params")
    msub = p.add_subparsers(dest="machine_command", metavar="SUBCOMMAND",
                            parser_class=type(p))
    pl = msub.add_parser("list", help="list the machine presets",
                         description="List the machine presets with their descriptions.",
                         epilog="example:\n  hwemu machine list --json", formatter_class=_FMT)
    pl.add_argument("--json", action="store_true", help="print JSON")
    pl.set_defaults(func=_cmd_list)
    ps = msub.add_parser(
        "show", help="topology and measured idle latency matrix of a machine",
        description="Print a machine's topology the way 'numactl --hardware' does (nodes, CPUs, "
                    "memory, SLIT-style distances) and the idle load latency from every CPU node "
                    "to every memory node, measured by a pointer chase through the model. "
                    "Distances are 10 x latency / local latency, rounded.",
        epilog="examples:\n  hwemu machine show skx-2s\n  hwemu machine show skx-2s-cxl --json\n"
               "  hwemu machine show --params        the parameter table",
        formatter_class=_FMT)
    ps.add_argument("machine", nargs="?", help="preset name or path to a machine TOML file")
    ps.add_argument("--json", action="store_true", help="print JSON")
    ps.add_argument("--params", action="store_true",
                    help="every parameter with its unit and description; with MACHINE, the "
                         "machine's own values (set, inherited or default)")
    ps.add_argument("--no-measure", action="store_true",
                    help="skip the latency measurement (topology only)")
    ps.set_defaults(func=_cmd_show)
    pd_ = msub.add_parser(
        "dump", help="write a machine as one TOML file (its base chain merged in)",
        description="Print machine NAME (a preset or a TOML file) as one self-contained TOML "
                    "file: the files of its base chain merged, so it can be edited and loaded "
                    "with --machine FILE. Loading the dump gives the same machine.",
        epilog="examples:\n  hwemu machine dump skx-2s > my.toml\n"
               "  hwemu machine dump skx-2s-cxl --out cxl.toml", formatter_class=_FMT)
    pd_.add_argument("machine", help="preset name or path to a machine TOML file")
    pd_.add_argument("--out", metavar="FILE", help="write to FILE instead of stdout")
    pd_.set_defaults(func=_cmd_dump)
    ph = msub.add_parser(
        "from-host", help="write a machine TOML describing this host (from sysfs)",
        description="Describe this host from Linux's sysfs: NUMA nodes, their CPUs and memory, "
                    "SLIT distances, CPU 0's caches and the core clock. Latencies, bandwidths, "
                    "DRAM timings and kernel costs cannot be read there: they come from --base "
                    "and are marked in the file as placeholders to calibrate.",
        epilog="examples:\n  hwemu machine from-host > host.toml\n"
               "  hwemu machine from-host --base epyc-2s --out host.toml\n"
               "  hwemu machine show host.toml", formatter_class=_FMT)
    ph.add_argument("--base", default="skx-2s", metavar="PRESET",
                    help="preset the placeholders come from (default skx-2s)")
    ph.add_argument("--out", metavar="FILE", help="write to FILE instead of stdout")
    ph.add_argument("--sysfs", default="/sys", help=argparse.SUPPRESS)
    ph.add_argument("--procfs", default="/proc", help=argparse.SUPPRESS)
    ph.set_defaults(func=_cmd_from_host)
    p.set_defaults(func=lambda a: (p.print_help(sys.stderr), 2)[1])

    pm = sub.add_parser(
        "mlc", help="idle and loaded memory latency of a machine (like Intel MLC)",
        description="Measure memory latency through the model as Intel's Memory Latency Checker "
                    "does on hardware.\n\n"
                    "--idle-latency: pointer-chase latency from every CPU node to every memory "
                    "node (ns): what 'mlc --latency_matrix' measures.\n\n"
                    "--loaded-latency: a latency probe on the first CPU of --cpu-node while "
                    "every other CPU of that node streams reads to --mem-node, one load every "
                    "DELAY core cycles, for each delay (largest first; delay 0 saturates); "
                    "prints latency (ns) against bandwidth (GB/s), as 'mlc "
                    "--loaded_latency' does.",
        epilog="examples:\n  hwemu mlc --machine skx-2s --idle-latency\n"
               "  hwemu mlc --machine skx-2s --loaded-latency --cpu-node 0 --mem-node 1 --json\n"
               "  hwemu mlc --machine skx-2s --loaded-latency --cpu-node 0 --mem-node 0 "
               "--plot curve.png\n"
               "  hwemu mlc --machine skx-2s --loaded-latency --read-write W5 --delays 200,50,0",
        formatter_class=_FMT)
    pm.add_argument("--machine", "-m", required=True, help="preset name or machine TOML file")
    g = pm.add_mutually_exclusive_group(required=True)
    g.add_argument("--idle-latency", action="store_true", help="idle latency matrix")
    g.add_argument("--loaded-latency", action="store_true", help="loaded latency curve")
    pm.add_argument("--cpu-node", type=int, default=0, help="node whose CPUs run (default 0)")
    pm.add_argument("--mem-node", type=int, default=0, help="node whose memory is read (default 0)")
    pm.add_argument("--delays", help="comma-separated delays in core cycles (default "
                    "0,2,5,10,15,20,30,50,100,200,400,1000,3000,9000)")
    pm.add_argument("--read-write", metavar="RATIO",
                    help="with --loaded-latency: traffic of the streaming CPUs as Intel MLC's -W "
                         "modes: R all reads (default), W2 (or 2:1) 2 reads : 1 write, W3 (3:1), "
                         "W4 (3:2), W5 (1:1), W6 (0:1) non-temporal writes only, W7 2:1, W8 1:1 "
                         "and W9 3:1 reads : non-temporal writes, W10 stream-triad-like 2:1 "
                         "with non-temporal writes, W11 triad-like 3:1, W12 4:1; bandwidth is "
                         "then reads + writes")
    pm.add_argument("--plot", metavar="PNG", help="also draw the loaded-latency curve to PNG")
    pm.add_argument("--json", action="store_true", help="print JSON")
    pm.set_defaults(func=_cmd_mlc)

    pr = sub.add_parser(
        "run", help="timing replay of a trace on a machine (first-touch placement)",
        description="Replay a native trace on a machine model: every access goes through TLBs, "
                    "caches, coherence, interconnect and memory controllers; pages are placed "
                    "on the node of the CPU that first touches them. Thread i runs on CPU i "
                    "unless --cpus says otherwise. Reports accesses (every trace record: "
                    "instruction fetches, loads and stores), their latency's mean and "
                    "percentiles, where they were served, per-node and per-link bandwidth and "
                    "simulated time.\n\n"
                    "With --schedule or --policy the Linux memory-management model runs inside "
                    "the machine: page faults, mempolicies, the schedule's thread moves and "
                    "system calls, and the policy's migrations, each step timed on the machine. "
                    "The report then adds pages attempted/migrated/failed by reason, passes, "
                    "time per protocol step, TLB shootdowns, bytes copied, latency before and "
                    "after each migration and numa_maps snapshots.",
        epilog="examples:\n  hwemu run --machine skx-2s ls.parquet\n"
               "  hwemu run --machine skx-2s --cpus 24-27 omp.parquet --json\n"
               "  hwemu run --machine my.toml t.parquet --stats-out stats.csv\n"
               "  hwemu run -m traces/demo/skx-2s-demo.toml traces/demo/numa_move.parquet \\\n"
               "      --schedule traces/demo/numa_move.toml --policy manual --json",
        formatter_class=_FMT)
    pr.add_argument("trace", help="native trace file (hwemu trace record / import)")
    pr.add_argument("--machine", "-m", required=True, help="preset name or machine TOML file")
    pr.add_argument("--cpus", help="CPUs for threads 0,1,... e.g. 0-3,24 (default 0,1,...)")
    pr.add_argument("--seed", type=int, default=0, help="seed for random replacement (default 0)")
    pr.add_argument("--stats-out", metavar="CSV",
                    help="also write every statistic (component, stat, value, unit) to CSV")
    pr.add_argument("--schedule", metavar="FILE",
                    help="schedule TOML (docs/schedule.md): processes, threads and their CPUs, "
                         "thread moves, system calls; runs the OS model inside the machine "
                         "(docs/experiments.md)")
    pr.add_argument("--policy", metavar="NAME",
                    help="placement and/or migration policy, e.g. autonuma or "
                         "interleave+autonuma (hwemu policies); implies the OS model")
    pr.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                    help="policy parameter (repeatable), e.g. scan_period_min=200us; "
                         "copy=dma puts the page copies of migrations on the machine's "
                         "[dma] engines; time_compression=C divides Linux's NUMA-balancing "
                         "times by C")
    pr.add_argument("--window", metavar="TIME",
                    help="timeline window with the OS model (default 10us)")
    pr.add_argument("--numastat", action="store_true",
                    help="with the OS model: also print numastat's per-node allocation counters "
                         "and numastat -p's per-process memory per node")
    pr.add_argument("--json", action="store_true", help="print JSON")
    pr.set_defaults(func=_cmd_run)


# ---------------------------------------------------------------------------------------------


def _cmd_list(args) -> int:
    from hwemu.cli.output import print_json
    from hwemu.machine.config import load_machine, preset_names

    rows = []
    for name in preset_names():
        c = load_machine(name)
        rows.append({"name": name, "sockets": c.sockets, "cpus": c.num_cpus,
                     "nodes": c.num_nodes, "description": c.description})
    if args.json:
        print_json(rows)
        return 0
    w = max(len(r["name"]) for r in rows)
    for r in rows:
        print(f"{r['name']:<{w}}  {r['cpus']:>4} CPUs  {r['nodes']} nodes  {r['description']}")
    return 0


def _cmd_show(args) -> int:
    from hwemu.cli.output import print_json
    from hwemu.machine.config import load_machine, param_rows
    from hwemu.machine.topology import describe

    if args.params and args.machine:
        from hwemu.machine.config import machine_dict, param_values

        load_machine(args.machine)                      # validates: errors name file and key
        rows = param_values(machine_dict(args.machine))
        if args.json:
            print_json(rows)
            return 0
        for r in rows:
            unit = f" [{r['unit']}]" if r["unit"] else ""
            val = r["value"]
            text = "(none)" if val is None else (str(val).lower() if isinstance(val, bool) else val)
            src = "" if r["source"] == "set" else f"  ({r['source']})"
            print(f"{r['key']}{unit} = {text}{src}")
        return 0
    if args.params:
        rows = param_rows()
        if args.json:
            print_json(rows)
            return 0
        for r in rows:
            dflt = f" (default {r['default']})" if r["default"] != "" else ""
            unit = f" [{r['unit']}]" if r["unit"] else ""
            print(f"{r['key']}{unit}{dflt}: {r['description']}")
        return 0
    if not args.machine:
        raise HwemuError("machine show: give a preset name or a TOML file (see 'hwemu machine list')")
    cfg = load_machine(args.machine)
    d = describe(cfg, measure=not args.no_measure)
    if args.json:
        print_json(d)
        return 0
    print(f"machine: {d['name']}  ({d['description']})")
    print(f"source: {d['source']}")
    print(f"sockets: {d['sockets']}  cpus: {d['cpus']}  core clock: {d['freq_ghz']:g} GHz")
    c = d["caches"]
    print("caches: " + ", ".join(f"{k} {v['size']} {v['ways']}-way {v['latency_cycles']}cyc"
                                 for k, v in c.items()))
    print(f"available: {cfg.num_nodes} nodes (0-{cfg.num_nodes - 1})")
    for n in d["nodes"]:
        cpus = _ranges(n["cpus"]) if n["cpus"] else "(none)"
        print(f"node {n['node']} cpus: {cpus}")
        print(f"node {n['node']} size: {n['size']}  ({n['name']}, {n['memory']}, "
              f"peak {n['peak_bandwidth_gbs']} GB/s)")
    for l in d["links"]:
        print(f"link {l['name']}: node {l['ends'][0]} <-> node {l['ends'][1]}, "
              f"{l['latency_ns']:g} ns, {l['bandwidth_gbs']:g} GB/s per direction")
    def matrix(title, rows):
        print(title)
        print("node " + "".join(f"{j:>5}" for j in range(cfg.num_nodes)))
        for i, row in enumerate(rows):
            print(f"{i:>4}:" + "".join(f"{v:>5}" for v in row))

    if d.get("distances_source") == "firmware":
        matrix("node distances (firmware SLIT, [[node]] distances; the OS model uses these):",
               d["distances"])
    if "measured_distances" in d:
        fw = d.get("distances_source") == "firmware"
        matrix("node distances measured (10 x idle latency ratio"
               + (", beside the firmware's):" if fw else "; the OS model uses these):"),
               d["measured_distances"])
        print("idle latency (ns), measured by pointer chase: rows = CPU node, columns = memory node")
        print("node " + "".join(f"{j:>8}" for j in range(cfg.num_nodes)))
        for i, row in zip(d["idle_latency_cpu_nodes"], d["idle_latency_ns"]):
            print(f"{i:>4}:" + "".join(f"{v:>8.1f}" for v in row))
    return 0


def _write_text(text: str, out: str | None) -> int:
    """A TOML text to ``--out`` (written atomically) or to stdout."""
    if out:
        from hwemu.fileio import atomic_path

        with atomic_path(out) as tmp:
            Path(tmp).write_text(text)
    else:
        sys.stdout.write(text)
    return 0


def _cmd_from_host(args) -> int:
    from hwemu.machine.config import load_machine_text
    from hwemu.machine.host import host_toml

    text = host_toml(args.sysfs, args.procfs, args.base)
    load_machine_text(text, "<from-host>")      # what is written must load
    return _write_text(text, args.out)


def _print_numastat(s: dict) -> None:
    """numastat(8)-style tables: allocation counters per node (pages), then numastat -p."""
    nodes = list(s["numastat"])
    print("numastat (pages)" + "".join(f"{n:>14}" for n in nodes))
    for key in ("numa_hit", "numa_miss", "numa_foreign", "local_node", "other_node"):
        print(f"{key:<16}" + "".join(f"{s['numastat'][n][key]:>14}" for n in nodes))
    for pid, per in s["numastat_p"].items():
        print(f"numastat -p {pid} (MiB)" + "".join(f"{n:>10}" for n in nodes) + f"{'Total':>10}")
        vals = [per.get(n, 0.0) for n in nodes]
        print(f"{'Private':<20}" + "".join(f"{v:>10.2f}" for v in vals) + f"{sum(vals):>10.2f}")


def _cmd_dump(args) -> int:
    from hwemu import __version__
    from hwemu.machine.config import dump_toml, load_machine, machine_dict

    cfg = load_machine(args.machine)                    # validates: errors name file and key
    text = dump_toml(machine_dict(args.machine),
                     f"{cfg.name}: {cfg.description}\nwritten by hwemu {__version__} "
                     f"'machine dump' from {cfg.source}; every key is documented by "
                     "'hwemu machine show --params'")
    return _write_text(text, args.out)


def _ranges(xs: list[int]) -> str:
    from hwemu.machine.topology import cpu_ranges

    out = cpu_ranges(xs)
    return " ".join(out) if len(xs) <= 8 else ",".join(out)


def _cmd_mlc(args) -> int:
    from hwemu.cli.output import print_json
    from hwemu.machine import mlc
    from hwemu.machine.config import load_machine

    from hwemu.fileio import check_writable

    rw = None
    if args.read_write is not None:
        if args.idle_latency:
            raise HwemuError("--read-write: only with --loaded-latency")
        rw = mlc.rw_mode(args.read_write)
    if args.plot and not args.idle_latency:
        check_writable(args.plot, "--plot")
    cfg = load_machine(args.machine)
    if args.idle_latency:
        if args.plot:
            raise HwemuError("--plot: only with --loaded-latency")
        lat = mlc.idle_matrix(cfg)
        if args.json:
            print_json({"machine": cfg.name, "cpu_nodes": cfg.cpu_nodes(), "idle_latency_ns": lat})
            return 0
        print(f"idle latency (ns) on {cfg.name}: rows = CPU node, columns = memory node")
        print("node " + "".join(f"{j:>8}" for j in range(cfg.num_nodes)))
        for i, row in zip(cfg.cpu_nodes(), lat):
            print(f"{i:>4}:" + "".join(f"{v:>8.1f}" for v in row))
        return 0
    delays = mlc.DEFAULT_DELAYS
    if args.delays:
        try:
            delays = [int(x) for x in args.delays.split(",") if x.strip()]
        except ValueError:
            raise HwemuError(f"--delays: expected comma-separated integers, got {args.delays!r}") from None
        if not delays or min(delays) < 0:
            raise HwemuError("--delays: need at least one delay, none negative")
    mlc._check_nodes(cfg, args.cpu_node, args.mem_node)
    pts = mlc.loaded_latency(cfg, args.cpu_node, args.mem_node, delays,
                             progress=sys.stderr.isatty(), read_write=rw)
    if args.plot:
        from hwemu.machine.plots import plot_loaded

        label = f"{cfg.name} node{args.cpu_node}->node{args.mem_node}"
        if rw is not None:
            label += f", {rw} ({mlc.RW_MODES[rw][0]})"
        plot_loaded(args.plot, {label: pts},
                    xlabel=None if rw is None else "bandwidth, reads + writes (GB/s)")
    if args.json:
        keys = ("delay_cycles", "bandwidth_gbs", "latency_ns")
        if rw is not None:
            keys += ("read_gbs", "write_gbs")
        out = {"machine": cfg.name, "cpu_node": args.cpu_node, "mem_node": args.mem_node}
        if rw is not None:
            out["read_write"] = rw
        out["points"] = [{k: p[k] for k in keys} for p in pts]
        print_json(out)
        return 0
    if rw is None:
        print(f"loaded latency on {cfg.name}: CPUs of node {args.cpu_node} reading node {args.mem_node}")
        print(f"{'delay(cyc)':>10} {'bandwidth(GB/s)':>16} {'latency(ns)':>12}")
        for p in pts:
            print(f"{p['delay_cycles']:>10} {p['bandwidth_gbs']:>16.2f} {p['latency_ns']:>12.1f}")
        return 0
    print(f"loaded latency on {cfg.name}: CPUs of node {args.cpu_node} to node {args.mem_node}, "
          f"{rw}: {mlc.RW_MODES[rw][0]}")
    print(f"{'delay(cyc)':>10} {'bandwidth(GB/s)':>16} {'reads':>8} {'writes':>8} {'latency(ns)':>12}")
    for p in pts:
        print(f"{p['delay_cycles']:>10} {p['bandwidth_gbs']:>16.2f} {p['read_gbs']:>8.2f} "
              f"{p['write_gbs']:>8.2f} {p['latency_ns']:>12.1f}")
    return 0


def _cmd_run(args) -> int:
    from hwemu.cli.output import print_json
    from hwemu.fileio import atomic_path
    from hwemu.machine.config import load_machine
    from hwemu.machine.replay import parse_cpus, run_trace

    from hwemu.fileio import check_writable

    if args.stats_out:
        check_writable(args.stats_out, "--stats-out")
    cfg = load_machine(args.machine)
    cpus = parse_cpus(args.cpus, cfg)
    if args.schedule or args.policy or args.param or args.window:
        return _cmd_run_os(args, cfg, cpus)
    res = run_trace(cfg, args.trace, cpus=cpus, seed=args.seed, progress=sys.stderr.isatty())
    if args.stats_out:
        with atomic_path(args.stats_out) as tmp:
            res.stats.to_frame().to_csv(tmp, index=False)
    s = res.summary
    if args.json:
        print_json(s)
        return 0
    _print_head(s)
    for n, bw in s["node_bandwidth_gbs"].items():
        print(f"{n}: read {bw['read_gbs']:.3f} GB/s, write {bw['write_gbs']:.3f} GB/s")
    for l, bw in s["link_bandwidth_gbs"].items():
        print(f"link {l}: {bw:.3f} GB/s")
    from hwemu.cli.output import count

    f = s["faults"]
    print("page faults: " + ", ".join(f"{k} {count(v)}" for k, v in f.items()))
    return 0


def _print_head(s: dict, policy: str | None = None) -> None:
    """The first lines of ``hwemu run``'s text: machine, time, accesses, latency, where the
    accesses were served. Accesses are every trace record (instruction fetches, loads,
    stores), and so is the latency's mean."""
    from hwemu.cli.output import count

    print(f"machine: {s['machine']}  threads: {s['threads']}  simulated time: "
          f"{s['sim_time_ns'] / 1e6:.3f} ms" + (f"  policy: {policy}" if policy else ""))
    print(f"accesses: {count(s['accesses'])} (instruction fetches, loads and stores)")
    print(f"latency (ns, every access, instruction fetches included): mean "
          f"{s['mean_latency_ns']:.2f}  p50 {s['p50_latency_ns']:.2f}  "
          f"p95 {s['p95_latency_ns']:.2f}  p99 {s['p99_latency_ns']:.2f}")
    acc = max(s["accesses"], 1)
    print("served by: " + ", ".join(f"{k} {count(v)} ({100 * v / acc:.1f}%)"
                                    for k, v in s["served"].items()))


def _parse_params(items) -> dict:
    out = {}
    for it in items:
        key, sep, value = it.partition("=")
        if not sep or not key.strip():
            raise HwemuError(f"--param: expected KEY=VALUE, got {it!r}")
        out[key.strip()] = value.strip()
    return out


def _cmd_run_os(args, cfg, cpus) -> int:
    """``hwemu run`` with the OS model (hwemu.sim.cosim)."""
    from pathlib import Path

    from hwemu.cli.output import print_json
    from hwemu.sim.cosim import CoSim, keep_fewer_collections
    from hwemu.fileio import atomic_path
    from hwemu.policies.registry import parse_policy_spec
    from hwemu.units import parse_time_ps

    if not Path(args.trace).is_file():
        raise HwemuError(f"{args.trace}: no such trace file")
    if args.schedule and cpus is not None:
        raise HwemuError("--cpus: the schedule gives each thread its CPU; use one or the other")
    from hwemu.sim.experiment import pop_run_param

    params = _parse_params(args.param)
    copy = pop_run_param(params, "copy", "cpu", "--param ")
    compression = pop_run_param(params, "time_compression", None, "--param ")
    placement, migration = parse_policy_spec(args.policy or "first-touch", params)
    if not args.schedule and migration.name in ("manual", "manual-dma"):
        raise HwemuError(f"--policy {args.policy}: the manual policy acts on the schedule's "
                         "thread moves; give --schedule FILE")
    window = parse_time_ps(args.window, "--window") if args.window else None
    if window is not None and window <= 0:
        raise HwemuError("--window: must be positive")
    if getattr(args, "process_ends", False):
        keep_fewer_collections()
    res = CoSim(cfg, args.trace, schedule=args.schedule, placement=placement,
                migration=migration, seed=args.seed, cpus=cpus, window_ps=window,
                progress=sys.stderr.isatty(), copy=copy,
                time_compression=compression).run()
    if args.stats_out:
        with atomic_path(args.stats_out) as tmp:
            res.stats.to_frame().to_csv(tmp, index=False)
    s = dict(res.summary)
    s["policy"] = args.policy or "first-touch"
    s["schedule"] = args.schedule
    s["migrations"] = [{k: (None if isinstance(v, float) and v != v else v) for k, v in row.items()}
                       for row in res.migrations.to_dict("records")]
    s["numa_maps"] = [{"time_ns": n["time_ns"], "when": n["when"], "pid": n["pid"],
                       "text": n["text"]} for n in res.numa_maps]
    s["syscalls"] = [e for e in res.log if e["action"] != "move_thread"]
    if args.json:
        print_json(s)
        return 0
    from hwemu.cli.output import count, duration, ns, size

    _print_head(s, s["policy"])
    print(f"memory accesses: local {s['local_share'] * 100:.1f}%  remote "
          f"{s['remote_share'] * 100:.1f}%  cxl {s['cxl_share'] * 100:.1f}%")
    for l, bw in s["link_bandwidth_gbs"].items():
        print(f"link {l}: {bw:.3f} GB/s")
    f = s["faults_handled"]
    print("page faults: " + ", ".join(f"{k} {count(v)}" for k, v in f.items())
          + f"  (waiting on migrations {duration(s['fault_lock_wait_ns'])})")
    print(f"migration: {count(s['pages_attempted'])} pages attempted, "
          f"{count(s['pages_migrated'])} migrated, {count(s['pages_failed'])} failed"
          + (" (" + ", ".join(f"{k} {count(v)}" for k, v in s["pages_failed_by_reason"].items())
             + ")" if s["pages_failed_by_reason"] else "")
          + f", {count(s['migration_passes'])} unmap and {count(s['migration_move_passes'])} "
            f"move passes, {size(s['bytes_copied'])} copied")
    print(f"TLB shootdowns: {count(s['tlb_shootdowns'])} ({count(s['ipis_sent'])} IPIs)  "
          f"OS CPU time: {duration(s['os_cpu_time_ns'])}")
    if s["step_time_ns"]:
        print("protocol steps (us): " + ", ".join(f"{k} {v / 1000:.1f}"
                                                 for k, v in s["step_time_ns"].items()))
    for row in s["migrations"][:20]:
        print(f"  at {row['time_ns'] / 1000:.1f} us {row['kind']}: {count(row['pages'])} pages "
              f"in {duration(row['duration_ns'])}; mean latency before {ns(row['latency_before_ns'])}, "
              f"after {ns(row['latency_after_ns'])}")
    if len(s["migrations"]) > 20:
        print(f"  ... {len(s['migrations']) - 20} more migrations (--json for all)")
    if getattr(args, "numastat", False):
        _print_numastat(s)
    for n in s["numa_maps"]:
        print(f"numa_maps pid {n['pid']} ({n['when']}, {n['time_ns'] / 1000:.1f} us):")
        for line in n["text"].splitlines():
            print("  " + line)
    return 0
