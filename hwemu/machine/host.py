"""A machine description of the host, from Linux's sysfs (``hwemu machine from-host``).

What sysfs says is taken as it is: the NUMA nodes with their CPUs (``/sys/devices/system/node/
nodeN/cpulist``), memory (``meminfo`` MemTotal) and SLIT distances (``distance``), the cache
hierarchy of CPU 0 (``/sys/devices/system/cpu/cpu0/cache/index*``: level, type, size, ways,
line size) and the core clock (``/proc/cpuinfo``). What sysfs cannot say - latencies,
bandwidths, DRAM timings, link speeds, the kernel-side costs - comes from ``base`` (skx-2s by
default) and is marked in the file as a placeholder to calibrate (docs/machine.md,
docs/validation.md: measure with Intel MLC or ``hwemu mlc`` against the host's own figures).

Each node with CPUs becomes a socket (the machine model has one memory node per socket); a
node without CPUs is a CPU-less memory node (CXL or similar) attached to the nearest socket.
"""

from __future__ import annotations

import re
from pathlib import Path

from hwemu.errors import HwemuError

HUGE = 2 << 20


def _read(p: Path) -> str:
    try:
        return p.read_text().strip()
    except OSError as exc:
        raise HwemuError(f"{p}: cannot read ({exc.strerror})") from None


def parse_cpulist(text: str) -> list[int]:
    """``"0-3,8,10-11"`` -> [0, 1, 2, 3, 8, 10, 11] (sysfs cpulist format)."""
    out: list[int] = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        if "-" in part:
            a, b = part.split("-", 1)
            out.extend(range(int(a), int(b) + 1))
        else:
            out.append(int(part))
    return out


def _size(text: str) -> int:
    m = re.fullmatch(r"(\d+)\s*([KMG]?)", text.strip())
    if not m:
        raise HwemuError(f"cache size {text!r}: not understood")
    return int(m.group(1)) << {"": 0, "K": 10, "M": 20, "G": 30}[m.group(2)]


def host_machine_dict(sys_root: str = "/sys", proc_root: str = "/proc", base: str = "skx-2s",
                      name: str = "host") -> dict:
    """The host as a machine TOML dict (see the module docstring)."""
    node_dir = Path(sys_root) / "devices" / "system" / "node"
    nodes = sorted((int(p.name[4:]), p) for p in node_dir.glob("node[0-9]*"))
    if not nodes:
        raise HwemuError(f"{node_dir}: no NUMA nodes found (is this Linux with sysfs?)")
    info = []
    for nid, p in nodes:
        cpus = parse_cpulist(_read(p / "cpulist")) if (p / "cpulist").exists() else []
        mem = re.search(r"MemTotal:\s+(\d+)\s*kB", _read(p / "meminfo"))
        size = (int(mem.group(1)) << 10) // HUGE * HUGE if mem else 0
        dist = [int(x) for x in _read(p / "distance").split()] if (p / "distance").exists() else []
        info.append({"id": nid, "cpus": cpus, "size": size, "distance": dist})
    cpu_nodes = [n for n in info if n["cpus"]]
    if not cpu_nodes:
        raise HwemuError(f"{node_dir}: no node has CPUs")
    per = {len(n["cpus"]) for n in cpu_nodes}
    if len(per) != 1:
        raise HwemuError(f"{node_dir}: nodes have different CPU counts ({sorted(per)}); the "
                         "machine model needs the same number of cores per socket")
    cores = per.pop()
    d: dict = {"base": base, "name": name,
               "description": f"this host from sysfs ({len(cpu_nodes)} socket(s) x {cores} "
                              f"CPUs); timings are {base}'s placeholders",
               "sockets": len(cpu_nodes), "core": {"cores_per_socket": cores}}
    cpuinfo = Path(proc_root) / "cpuinfo"
    if cpuinfo.exists():
        m = re.search(r"cpu MHz\s*:\s*([\d.]+)", cpuinfo.read_text())
        if m:
            d["core"]["freq"] = f"{round(float(m.group(1)))}MHz"
    caches: dict = {}
    cache_dir = Path(sys_root) / "devices" / "system" / "cpu" / "cpu0" / "cache"
    for idx in sorted(cache_dir.glob("index[0-9]*")):
        try:
            level = int(_read(idx / "level"))
            kind = _read(idx / "type")
            size = _size(_read(idx / "size"))
            ways = int(_read(idx / "ways_of_associativity"))
            line = int(_read(idx / "coherency_line_size"))
        except (HwemuError, ValueError):
            continue
        key = {(1, "Data"): "l1d", (1, "Instruction"): "l1i", (2, "Unified"): "l2",
               (3, "Unified"): "llc"}.get((level, kind))
        if key is None or line != 64 or ways < 1:
            continue
        caches[key] = {"size": f"{size >> 10}KiB", "ways": ways}
    if caches:
        d["cache"] = caches
    socket_of = {n["id"]: s for s, n in enumerate(cpu_nodes)}
    node_tables = []
    for n in info:
        t = {"name": f"node{n['id']}", "size": f"{max(n['size'], HUGE) >> 20}MiB",
             "socket": socket_of.get(n["id"], -1)}
        if len(info) > 1 and all(len(m["distance"]) == len(info) for m in info):
            t["distances"] = list(n["distance"])     # the firmware SLIT row, as Linux reads it
        node_tables.append(t)
    d["node"] = node_tables
    # one link between every pair of sockets, and from each CPU-less node to its nearest
    # socket; latency and bandwidth are placeholders to calibrate
    links = []
    index = {n["id"]: i for i, n in enumerate(info)}
    for i, a in enumerate(cpu_nodes):
        for b in cpu_nodes[i + 1:]:
            links.append({"name": f"link{len(links)}", "ends": [index[a["id"]], index[b["id"]]],
                          "latency": "40ns", "bandwidth": "20.8GB/s"})
    for n in info:
        if n["cpus"]:
            continue
        near = min(cpu_nodes, key=lambda c: (n["distance"][index[c["id"]]]
                                             if len(n["distance"]) > index[c["id"]] else 99,
                                             c["id"]))
        links.append({"name": f"link{len(links)}", "ends": [index[near["id"]], index[n["id"]]],
                      "latency": "70ns", "bandwidth": "32GB/s"})
    d["link"] = links
    d["_slit"] = [n["distance"] for n in info]
    return d


def host_toml(sys_root: str = "/sys", proc_root: str = "/proc", base: str = "skx-2s") -> str:
    """The TOML text ``hwemu machine from-host`` writes."""
    from hwemu.machine.config import dump_toml

    d = host_machine_dict(sys_root, proc_root, base)
    slit = d.pop("_slit")
    header = ("A machine description of this host, written by 'hwemu machine from-host' from "
              "sysfs.\nTaken from the host: nodes, CPUs, memory sizes, caches of CPU 0, core "
              "clock.\nPLACEHOLDERS TO CALIBRATE (from base = "
              f"\"{base}\"): every latency and bandwidth,\nDRAM timings, link latency and "
              "bandwidth, the [os] and [parametric] costs. Measure them\n(Intel MLC, or "
              "'hwemu mlc' against published figures) and set them here.\n"
              "SLIT distances reported by the firmware (row = node): "
              + "; ".join(" ".join(str(x) for x in row) for row in slit))
    body = dump_toml({k: v for k, v in d.items() if k != "base"}, header)
    # base first, so the file reads as "this preset, with the host's topology"
    head, _, rest = body.partition("\n\n")
    return f"{head}\n\nbase = \"{base}\"\n{rest}"
