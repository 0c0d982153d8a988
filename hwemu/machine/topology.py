"""A machine's topology as data: nodes, CPUs, caches, links, the firmware SLIT distances (when the
machine file gives them), the idle latency matrix measured through the model and the SLIT-style
distances derived from it (``hwemu machine show``)."""

from __future__ import annotations


def describe(cfg, measure: bool = True) -> dict:
    """A machine's topology as plain data (what ``hwemu machine show`` prints); with
    ``measure``, also its idle latency matrix measured through the model and the SLIT-style
    distances derived from it (:func:`slit_from_latency`)."""
    from hwemu.units import format_size

    nodes = []
    for n in cfg.nodes:
        nodes.append({"node": n.id, "name": n.name, "cpus": cfg.node_cpus(n.id),
                      "size_bytes": n.size_bytes, "size": format_size(n.size_bytes),
                      "memory": f"{n.dram.channels}ch {n.dram.type}".strip(),
                      "peak_bandwidth_gbs": round(n.dram.peak_bandwidth_bps / 1e9, 1)})
    d = {"name": cfg.name, "description": cfg.description, "source": cfg.source,
         "sockets": cfg.sockets, "cpus": cfg.num_cpus, "freq_ghz": cfg.freq_hz / 1e9,
         "caches": {k: {"size": format_size(c.size_bytes), "ways": c.ways,
                        "latency_cycles": c.latency_cycles, "policy": c.policy}
                    for k, c in (("l1i", cfg.l1i), ("l1d", cfg.l1d), ("l2", cfg.l2),
                                 ("llc", cfg.llc))},
         "nodes": nodes,
         "links": [{"name": l.name, "ends": [l.a, l.b], "latency_ns": l.latency_ps / 1000,
                    "bandwidth_gbs": l.bandwidth_bps / 1e9} for l in cfg.links],
         "hops": cfg.hops()}
    fw = firmware_slit(cfg)
    if fw is not None:
        d["distances"] = [list(r) for r in fw]
        d["distances_source"] = "firmware"
    if measure:
        from hwemu.machine.mlc import idle_matrix

        cpu_nodes = cfg.cpu_nodes()
        lat = idle_matrix(cfg)
        d["idle_latency_cpu_nodes"] = cpu_nodes
        d["idle_latency_ns"] = lat
        d["measured_distances"] = slit_from_latency(cfg, cpu_nodes, lat)
        if fw is None:
            d["distances"] = d["measured_distances"]
            d["distances_source"] = "measured"
    return d


def firmware_slit(cfg) -> tuple | None:
    """The firmware SLIT the machine file gives (``[[node]] distances``), or None."""
    if not cfg.nodes or not all(n.distances for n in cfg.nodes):
        return None
    return tuple(tuple(n.distances) for n in cfg.nodes)


def slit_from_latency(cfg, cpu_nodes: list[int], lat: list[list[float]]) -> list[list[int]]:
    """SLIT-style distances (10 = local) from an idle latency matrix: row ``i`` is
    ``10 * latency(i -> j) / latency(i -> i)``; a CPU-less node uses the reverse direction,
    and between two CPU-less nodes ``10 + 10 * hops``."""
    hops = cfg.hops()
    dist = []
    for i in range(cfg.num_nodes):
        row = []
        for j in range(cfg.num_nodes):
            if i == j:
                row.append(10)
                continue
            if i in cpu_nodes:
                r = cpu_nodes.index(i)
                row.append(int(round(10 * lat[r][j] / lat[r][i])))
            elif j in cpu_nodes:   # a CPU-less node: use the reverse direction
                r = cpu_nodes.index(j)
                row.append(int(round(10 * lat[r][i] / lat[r][j])))
            else:
                row.append(10 + 10 * hops[i][j])
        dist.append(row)
    return dist


_SLIT_CACHE: dict = {}


def slit_distances(cfg) -> tuple:
    """The machine's SLIT distances as the OS sees them: the firmware's, when the machine file
    gives them (``[[node]] distances``, as Linux reads ACPI SLIT), else :func:`slit_from_latency`
    of the idle latency matrix measured through the model, measured once per machine
    description."""
    fw = firmware_slit(cfg)
    if fw is not None:
        return fw
    key = (cfg.name, cfg.source, repr(cfg.nodes), repr(cfg.links))
    got = _SLIT_CACHE.get(key)
    if got is None:
        got = _SLIT_CACHE[key] = tuple(tuple(r) for r in describe(cfg, measure=True)["distances"])
    return got


def cpu_ranges(cpus: list[int]) -> list[str]:
    """Runs of consecutive CPU ids as range strings: [0, 1, 2, 5] -> ["0-2", "5"] (the pieces
    of a sysfs cpulist)."""
    if not cpus:
        return []
    out, start = [], cpus[0]
    for a, b in zip(cpus, cpus[1:] + [None]):
        if b != a + 1:
            out.append(f"{start}-{a}" if a != start else f"{a}")
            start = b
    return out

