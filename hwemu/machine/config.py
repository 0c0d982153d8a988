"""Machine descriptions: TOML files loaded into frozen, validated dataclasses.

A description is a TOML file whose keys are listed, with unit and meaning, in
:mod:`hwemu.machine.params`. A file may start from a preset with ``base = "skx-2s"`` (or a path)
and override keys: tables merge key by key, arrays (``[[node]]``, ``[[link]]``) replace whole.
Every quantity is parsed once, here, into integers (bytes, picoseconds) or floats (Hz, B/s);
errors name the file and the key::

    my.toml: [cache.llc] size: cannot parse 'big' as a size such as 32KiB
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from hwemu.errors import HwemuError
from hwemu.fileio import parse_toml_bytes, read_toml
from hwemu.machine.params import (CACHE_PARAMS, CACHES, DRAM_PARAMS, LINK_PARAMS, NODE_PARAMS,
                                  PARAMS, all_params)
from hwemu.params import config_class
from hwemu.units import MAX_CACHE_BYTES, MAX_MACHINE_CACHE_BYTES, check_max, period_ps

PRESET_DIR = Path(__file__).with_name("presets")
LINE_BYTES = 64


def section_params(section: str) -> tuple:
    """The declared keys of one TOML table ("" = the top level)."""
    return tuple(p for p in PARAMS if p.section == section)


# The config objects of the tables whose keys map one to one onto attributes are made from the
# declarations (hwemu.machine.params): one field per key, ``[dram] tCL`` -> ``DramConfig.tCL_ps``.
# The classes below only add what is computed from those fields.

class _CacheConfig:
    __slots__ = ()

    @property
    def sets(self) -> int:
        return self.size_bytes // (LINE_BYTES * self.ways)


TLBS = ("l1i", "l1d_4k", "l1d_2m", "stlb")


class _TlbConfig:
    __slots__ = ()

    def entries_ways(self, tlb: str) -> tuple[int, int]:
        """(entries, ways) of one of ``TLBS``."""
        return getattr(self, f"{tlb}_entries"), getattr(self, f"{tlb}_ways")


class _DramConfig:
    __slots__ = ()

    @property
    def peak_bandwidth_bps(self) -> float:
        return self.channels * LINE_BYTES / (self.tBURST_ps * 1e-12)


CacheConfig = config_class("CacheConfig", CACHE_PARAMS, __name__, base=_CacheConfig,
                           doc="One cache level (a [cache.NAME] table).")
DramConfig = config_class("DramConfig", DRAM_PARAMS, __name__, base=_DramConfig,
                          doc="The memory of one node: the [dram] table with the node's "
                              "own ``dram`` overrides.")
TlbConfig = config_class("TlbConfig", section_params("tlb"), __name__, base=_TlbConfig,
                         doc="The TLBs of a core ([tlb] table).")
PrefetchConfig = config_class("PrefetchConfig", section_params("prefetch"), __name__,
                              doc="The L2 stream prefetcher ([prefetch] table).")
OsCosts = config_class(
    "OsCosts", section_params("os"), __name__,
    doc="Kernel-side hardware costs ([os] table): the page-fault entry cost the timing model "
        "charges, and the costs it does not simulate itself (TLB maintenance, IPIs, locked "
        "RMWs, the streamer's run-ahead during kernel copies and metadata walks), used by the "
        "OS model's adapter. Defaults: 2-socket AMD EPYC 7763.")
DmaConfig = config_class(
    "DmaConfig", section_params("dma"), __name__,
    doc="Page-copy DMA engines ([dma] table): the build parameters of rtl/page_copy_dma.v and "
        "its clock. ``engines`` = 0: the machine has none.")
ParametricCosts = config_class(
    "ParametricCosts", section_params("parametric"), __name__,
    doc="The calibrated numbers of the parametric OS-cost model ([parametric] table). "
        "Defaults: 2-socket AMD EPYC 7763.")


@dataclass(frozen=True, slots=True)
class NodeConfig:
    id: int
    name: str
    socket: int
    size_bytes: int
    dram: DramConfig
    remote_trackers: int = 0
    distances: tuple = ()       # the node's row of the firmware SLIT (empty: derived)

    @property
    def has_cpus(self) -> bool:
        return self.socket >= 0


@dataclass(frozen=True, slots=True)
class LinkConfig:
    id: int
    name: str
    a: int
    b: int
    latency_ps: int
    bandwidth_bps: float
    header_bytes: int


class _MachineConfig:
    __slots__ = ()

    @property
    def num_cpus(self) -> int:
        return self.sockets * self.cores_per_socket

    @property
    def num_nodes(self) -> int:
        return len(self.nodes)

    @property
    def period_ps(self) -> float:
        return period_ps(self.freq_hz)

    def cycles_ps(self, cycles: float) -> int:
        return int(round(cycles * self.period_ps))

    def cpu_socket(self, cpu: int) -> int:
        return cpu // self.cores_per_socket

    def socket_node(self, socket: int) -> int:
        for n in self.nodes:
            if n.socket == socket:
                return n.id
        raise AssertionError(f"socket {socket} has no node")

    def cpu_node(self, cpu: int) -> int:
        return self.socket_node(self.cpu_socket(cpu))

    def node_cpus(self, node: int) -> list[int]:
        s = self.nodes[node].socket
        if s < 0:
            return []
        return list(range(s * self.cores_per_socket, (s + 1) * self.cores_per_socket))

    def cpu_nodes(self) -> list[int]:
        return [n.id for n in self.nodes if n.has_cpus]

    def section(self, table: str):
        """The object holding the keys of one TOML table (``"os"`` -> ``self.os``; the
        ``[dram]`` keys are per node: ``self.nodes[i].dram``)."""
        if table in MACHINE_SECTIONS:
            return self
        if table.startswith("cache."):
            return getattr(self, table[len("cache."):])
        return getattr(self, table)

    def hops(self) -> list[list[int]]:
        """Link hops between every pair of nodes (shortest path)."""
        from hwemu.machine.interconnect import shortest_paths

        dist, _ = shortest_paths(self.num_nodes, [(l.a, l.b) for l in self.links])
        return dist


# the keys of the top level and of [core], [coherence] and [uncore] are attributes of the
# machine itself (``[core] freq`` -> ``MachineConfig.freq_hz``); the other tables are objects
MACHINE_SECTIONS = ("", "core", "coherence", "uncore")
MachineConfig = config_class(
    "MachineConfig", [p for p in PARAMS if p.section in MACHINE_SECTIONS], __name__,
    base=_MachineConfig,
    extra=(("source", str), ("l1i", CacheConfig), ("l1d", CacheConfig), ("l2", CacheConfig),
           ("llc", CacheConfig), ("tlb", TlbConfig), ("nodes", tuple), ("links", tuple),
           ("prefetch", PrefetchConfig), ("os", OsCosts), ("parametric", ParametricCosts),
           ("dma", DmaConfig)),
    doc="A loaded, validated machine description.")


# ---------------------------------------------------------------------------------------------
# Loading


def preset_names() -> list[str]:
    return sorted(p.stem for p in PRESET_DIR.glob("*.toml"))


def resolve(name_or_path: str) -> Path:
    """A preset name or a path to a TOML file."""
    p = Path(name_or_path)
    if p.suffix == ".toml" or "/" in name_or_path or p.exists():
        if not p.exists():
            raise HwemuError(f"{name_or_path}: no such machine file")
        if p.is_dir():
            raise HwemuError(f"{name_or_path}: is a directory, expected a machine TOML file")
        return p
    preset = PRESET_DIR / f"{name_or_path}.toml"
    if not preset.exists():
        raise HwemuError(f"unknown machine {name_or_path!r}: not a file and not a preset "
                         f"(presets: {', '.join(preset_names())})")
    return preset


def _read_toml(path: Path) -> dict:
    return read_toml(path, "machine TOML file")


def _merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _merge(out[k], v)
        else:
            out[k] = v
    return out


def _load_dict(path: Path, depth: int = 0) -> dict:
    if depth > 8:
        raise HwemuError(f"{path}: 'base' chain is too deep (a cycle?)")
    d = _read_toml(path)
    base = d.pop("base", None)
    if base is None:
        return d
    if not isinstance(base, str):
        raise HwemuError(f"{path}: base: expected a preset name or file path string")
    try:
        bpath = resolve(base) if not (path.parent / base).exists() else path.parent / base
    except HwemuError as exc:
        raise HwemuError(f"{path}: base: {exc}") from None
    return _merge(_load_dict(bpath, depth + 1), d)


def machine_dict(name_or_path: str, overrides: dict | None = None) -> dict:
    """The machine description as one TOML-shaped dict: the file with its ``base`` chain
    merged in, then ``overrides`` (nested tables, or dotted keys such as
    ``{"cache.llc.size": "8MiB"}``) on top."""
    d = _load_dict(resolve(name_or_path))
    if overrides:
        d = _merge(d, _nest(overrides))
    return d


def _nest(overrides: dict) -> dict:
    out: dict = {}
    for key, value in overrides.items():
        parts = str(key).split(".")
        cur = out
        for p in parts[:-1]:
            cur = cur.setdefault(p, {})
            if not isinstance(cur, dict):
                raise HwemuError(f"override {key!r}: {p} is not a table")
        cur[parts[-1]] = _nest(value) if isinstance(value, dict) else value
    return out


def dump_toml(d: dict, header: str = "") -> str:
    """A machine dict as TOML text (``hwemu machine dump``); loading it gives the same machine."""
    import tomli_w

    body = tomli_w.dumps({k: v for k, v in d.items() if k != "base"})
    lines = [f"# {line}" if line else "#" for line in header.splitlines()]
    return ("\n".join(lines) + "\n\n" if lines else "") + body


def param_values(d: dict) -> list[dict]:
    """Every parameter of a machine dict with the value it has there (set, inherited from the
    ``base`` chain, or the default), as ``machine show NAME --params`` lists them. Node and link
    parameters are listed per node and link; a node's DRAM keys are the [dram] table with the
    node's own ``dram`` overrides."""
    rows = []

    def add(key, p, raw, where):
        rows.append({"key": key, "value": raw, "unit": p.unit, "source": where,
                     "description": p.description})

    for p in PARAMS:
        table = d
        for part in (p.section.split(".") if p.section else []):
            table = table.get(part, {}) if isinstance(table, dict) else {}
        if isinstance(table, dict) and p.name in table:
            add(p.toml_key, p, table[p.name], "set")
        else:
            add(p.toml_key, p, p.default, "default")
    dram = d.get("dram", {}) if isinstance(d.get("dram", {}), dict) else {}
    for i, nd in enumerate(d.get("node", []) or []):
        for p in NODE_PARAMS:
            if p.name == "dram":
                continue
            add(f"[[node]] #{i} {p.name}", p, nd.get(p.name, p.default),
                "set" if p.name in nd else "default")
        own = nd.get("dram", {}) if isinstance(nd.get("dram", {}), dict) else {}
        for p in DRAM_PARAMS:
            if p.name in own:
                add(f"[[node]] #{i} dram.{p.name}", p, own[p.name], "set")
            elif p.name in dram:
                add(f"[[node]] #{i} dram.{p.name}", p, dram[p.name], "[dram]")
            else:
                add(f"[[node]] #{i} dram.{p.name}", p, p.default, "default")
    for i, ld in enumerate(d.get("link", []) or []):
        for p in LINK_PARAMS:
            add(f"[[link]] #{i} {p.name}", p, ld.get(p.name, p.default),
                "set" if p.name in ld else "default")
    return rows


def load_machine(name_or_path: str) -> MachineConfig:
    """Load a preset by name or a TOML file (which may say ``base = "preset"``)."""
    path = resolve(name_or_path)
    d = _load_dict(path)
    src = str(path) if path.parent != PRESET_DIR else f"{path.stem} (preset)"
    return from_dict(d, src)


def as_config(machine: "MachineConfig | str") -> MachineConfig:
    """The one way the library takes a machine: a :class:`MachineConfig`, or a preset name or
    TOML path to load (the command line and Dask cells pass names; Python callers may pass
    either)."""
    return machine if isinstance(machine, MachineConfig) else load_machine(str(machine))


def load_machine_text(text: str, source: str = "<string>") -> MachineConfig:
    d = parse_toml_bytes(text.encode("utf-8", "surrogatepass"), source)
    base = d.pop("base", None)
    if base is not None:
        d = _merge(_load_dict(resolve(base)), d)
    return from_dict(d, source)


class _Section:
    """Reads the keys of one TOML table with their declarations (hwemu.machine.params)."""

    def __init__(self, src: str, label: str, table: dict, params):
        self.src = src
        self.label = label
        if not isinstance(table, dict):
            raise HwemuError(f"{src}: {label}: expected a table")
        self.table = table
        self.params = {p.name: p for p in params}
        unknown = [k for k in table if k not in self.params]
        if unknown:
            raise HwemuError(f"{src}: {label} {unknown[0]}: unknown key (known: "
                             f"{', '.join(self.params)})")

    def where(self, key: str) -> str:
        return f"{self.src}: {self.label} {key}".replace(":  ", ": ")

    def get(self, key: str):
        """The value of ``key`` (or its default), parsed and checked as declared."""
        p = self.params[key]
        if key in self.table:
            raw = self.table[key]
        elif p.default is not None:
            raw = p.default
        else:
            raise HwemuError(f"{self.where(key)}: missing (required, {p.description})")
        return p.read(raw, self.where(key))

    def values(self) -> dict:
        """Every key of the table by its config attribute: {"tCL_ps": 13750, ...}."""
        return {p.attribute: self.get(name) for name, p in self.params.items()}

    def at_most(self, key: str, value, maximum: int, what: str) -> None:
        if value > maximum:
            raise HwemuError(f"{self.where(key)}: at most {maximum} {what} are supported")


def _cache(src: str, d: dict, name: str) -> CacheConfig:
    sec = _Section(src, f"[cache.{name}]", d.get("cache", {}).get(name, {}),
                   section_params(f"cache.{name}"))
    cfg = CacheConfig(**sec.values())
    check_max(cfg.size_bytes, MAX_CACHE_BYTES, sec.where("size"), "cache size (bytes)")
    if cfg.size_bytes % (LINE_BYTES * cfg.ways):
        raise HwemuError(f"{sec.where('size')}: {cfg.size_bytes} bytes is not a whole number of "
                         f"{cfg.ways}-way sets of {LINE_BYTES}-byte lines")
    if cfg.policy == "plru" and (cfg.ways & (cfg.ways - 1) or cfg.ways > 64):
        raise HwemuError(f"{sec.where('policy')}: tree PLRU needs a power-of-two number of ways "
                         f"of at most 64, not {cfg.ways}")
    return cfg


def _dram(src: str, label: str, table: dict) -> DramConfig:
    sec = _Section(src, label, table, DRAM_PARAMS)
    cfg = DramConfig(**sec.values())
    if not 0.0 < cfg.write_high <= 1.0:
        raise HwemuError(f"{sec.where('write_high')}: must be in (0, 1], got {cfg.write_high}")
    if not 0.0 <= cfg.write_low < cfg.write_high:
        raise HwemuError(f"{sec.where('write_low')}: must be in [0, write_high), "
                         f"got {cfg.write_low}")
    if cfg.banks % cfg.bank_groups:
        raise HwemuError(f"{sec.where('bank_groups')}: {cfg.banks} banks do not divide into "
                         f"{cfg.bank_groups} bank groups")
    if cfg.write_queue > 1024:
        raise HwemuError(f"{sec.where('write_queue')}: at most 1024 entries, got {cfg.write_queue}")
    if cfg.tCMD_ps and (cfg.tBURST_ps % 4 or cfg.tCMD_ps != cfg.tBURST_ps // 4):
        raise HwemuError(f"{sec.where('tCMD')}: the command bus takes one command per tCK, a "
                         f"quarter of tBURST ({cfg.tBURST_ps / 4000:g}ns), got "
                         f"{cfg.tCMD_ps / 1000:g}ns")
    if cfg.row_bytes % LINE_BYTES or cfg.interleave_bytes % LINE_BYTES:
        raise HwemuError(f"{sec.where('row')}: row and interleave must be multiples of 64 bytes")
    if cfg.interleave_bytes > cfg.row_bytes:
        raise HwemuError(f"{sec.where('interleave')}: must not exceed the row size")
    if cfg.tRFC_ps >= cfg.tREFI_ps:
        raise HwemuError(f"{sec.where('tRFC')}: must be shorter than tREFI")
    return cfg


def _dma(sec) -> DmaConfig:
    """The [dma] table, checked against what the RTL can be built with (docs/dma.md)."""
    cfg = DmaConfig(**sec.values())
    sec.at_most("engines", cfg.engines, 64, "engines per socket")
    width = cfg.data_width_bytes
    if width not in (8, 16, 32):
        raise HwemuError(f"{sec.where('data_width')}: must be 8B, 16B or 32B (DATA_WIDTH 64, 128 "
                         f"or 256), got {width} bytes")
    burst = cfg.burst_len
    if burst > 256:
        raise HwemuError(f"{sec.where('burst_len')}: must be 1..256, got {burst}")
    fifo = cfg.fifo_depth
    if fifo and fifo < min(burst, 4096 // width):
        raise HwemuError(f"{sec.where('fifo_depth')}: must hold one burst "
                         f"({min(burst, 4096 // width)} beats), got {fifo}")
    if cfg.clock_hz <= 0:
        raise HwemuError(f"{sec.where('clock')}: must be positive")
    return cfg


def _check_slit(src: str, nodes: list) -> None:
    """Firmware SLIT rows (``[[node]] distances``): on every node or on none, one entry per
    node, 10 on the diagonal, 11..254 elsewhere (ACPI: 0-9 reserved, 255 unreachable)."""
    given = [n for n in nodes if n.distances]
    if not given:
        return
    for n in nodes:
        where = f"{src}: [[node]] #{n.id} distances"
        if not n.distances:
            raise HwemuError(f"{where}: missing (node {given[0].id} has a SLIT row, so every "
                             "node needs one)")
        if len(n.distances) != len(nodes):
            raise HwemuError(f"{where}: expected {len(nodes)} entries (one per node), got "
                             f"{len(n.distances)}")
        for j, v in enumerate(n.distances):
            if j == n.id and v != 10:
                raise HwemuError(f"{where}: entry {j} (the node itself) must be 10, got {v}")
            if j != n.id and not 10 < v < 255:
                raise HwemuError(f"{where}: entry {j} must be 11..254, got {v}")


def from_dict(d: dict, src: str) -> MachineConfig:
    """Validate a merged TOML dict and build the MachineConfig."""
    known_tables = {"core", "cache", "tlb", "coherence", "uncore", "os", "dram", "node", "link",
                    "prefetch", "parametric", "dma"}
    top = {k: v for k, v in d.items() if k not in known_tables}
    if "cache" in d and not isinstance(d["cache"], dict):
        raise HwemuError(f"{src}: [cache]: expected a table")
    unknown = [c for c in d.get("cache", {}) if c not in CACHES]
    if unknown:
        raise HwemuError(f"{src}: [cache.{unknown[0]}]: unknown cache (known: {', '.join(CACHES)})")
    sections = {name: _Section(src, f"[{name}]" if name else "",
                               d.get(name, {}) if name else top, section_params(name))
                for name in MACHINE_SECTIONS + ("tlb", "os", "prefetch", "parametric", "dma")}
    machine = {}
    for name in MACHINE_SECTIONS:
        machine.update(sections[name].values())
    core, unc = sections["core"], sections["uncore"]
    if machine["base_cpi"] <= 0:
        raise HwemuError(f"{core.where('base_cpi')}: must be positive")
    core.at_most("cores_per_socket", machine["cores_per_socket"], 64, "cores per socket")
    core.at_most("lfb", machine["lfb"], 64, "line-fill buffers")
    machine["superqueue"] = machine["superqueue"] or machine["lfb"]
    core.at_most("superqueue", machine["superqueue"], 64, "superqueue entries")
    unc.at_most("remote_trackers", machine["remote_trackers"], 64, "remote trackers")
    sockets = machine["sockets"]

    pfs = sections["prefetch"]
    prefetch = PrefetchConfig(**pfs.values())
    pfs.at_most("streams", prefetch.streams, 256, "streams")
    if prefetch.distance > 63:
        raise HwemuError(f"{pfs.where('distance')}: at most 63 lines (a stream stays in its 4 KiB "
                         f"page), got {prefetch.distance}")
    os_costs = OsCosts(**sections["os"].values())
    par = sections["parametric"]
    parametric = ParametricCosts(**par.values())
    if parametric.remote_distance <= 10:
        raise HwemuError(f"{par.where('remote_distance')}: must be above 10 (the local distance), "
                         f"got {parametric.remote_distance}")
    if parametric.mem_latency_remote_ps < parametric.mem_latency_local_ps:
        raise HwemuError(f"{par.where('mem_latency_remote')}: must not be below mem_latency_local")
    tlbs = sections["tlb"]
    tlb = TlbConfig(**tlbs.values())
    for key in TLBS:
        e, w = tlb.entries_ways(key)
        if e % w:
            raise HwemuError(f"{tlbs.where(key + '_entries')}: {e} entries is not a multiple of "
                             f"{w} ways")

    dram_default = d.get("dram", {})
    if not isinstance(dram_default, dict):
        raise HwemuError(f"{src}: [dram]: expected a table")
    raw_nodes = d.get("node")
    if not isinstance(raw_nodes, list) or not raw_nodes:
        raise HwemuError(f"{src}: [[node]]: at least one node is required")
    nodes = []
    for i, nd in enumerate(raw_nodes):
        ns = _Section(src, f"[[node]] #{i}", nd, NODE_PARAMS)
        socket = ns.get("socket")
        if socket < -1 or socket >= sockets:
            raise HwemuError(f"{ns.where('socket')}: {socket} is not a socket of this machine "
                             f"(0..{sockets - 1}, or -1 for a CPU-less node)")
        dram = _dram(src, f"[[node]] #{i} dram", _merge(dram_default, ns.get("dram")))
        size = ns.get("size")
        if size % (1 << 21):
            raise HwemuError(f"{ns.where('size')}: must be a multiple of 2MiB")
        rt = ns.get("remote_trackers")
        ns.at_most("remote_trackers", rt, 64, "remote trackers")
        nodes.append(NodeConfig(id=i, name=ns.get("name") or f"node{i}", socket=socket,
                                size_bytes=size, dram=dram, distances=tuple(ns.get("distances")),
                                remote_trackers=machine["remote_trackers"] if rt < 0 else rt))
    _check_slit(src, nodes)
    for s in range(sockets):
        owners = [n.id for n in nodes if n.socket == s]
        if len(owners) != 1:
            raise HwemuError(f"{src}: [[node]]: socket {s} must have exactly one local node, "
                             f"has {len(owners)}")
    raw_links = d.get("link", [])
    if not isinstance(raw_links, list):
        raise HwemuError(f"{src}: [[link]]: expected an array of tables")
    links = []
    for i, ld in enumerate(raw_links):
        ls = _Section(src, f"[[link]] #{i}", ld, LINK_PARAMS)
        ends = ls.get("ends")
        if len(ends) != 2 or ends[0] == ends[1] or not all(0 <= e < len(nodes) for e in ends):
            raise HwemuError(f"{ls.where('ends')}: expected two different node ids in "
                             f"0..{len(nodes) - 1}, got {ends}")
        links.append(LinkConfig(id=i, name=ls.get("name") or f"link{i}", a=ends[0], b=ends[1],
                                latency_ps=ls.get("latency"), bandwidth_bps=ls.get("bandwidth"),
                                header_bytes=ls.get("header")))
    cfg = MachineConfig(
        **machine, source=src,
        l1i=_cache(src, d, "l1i"), l1d=_cache(src, d, "l1d"), l2=_cache(src, d, "l2"),
        llc=_cache(src, d, "llc"), tlb=tlb, nodes=tuple(nodes), links=tuple(links),
        prefetch=prefetch, os=os_costs, parametric=parametric, dma=_dma(sections["dma"]),
    )
    # Every core has its own L1s and L2, every socket its LLC: refuse a machine whose caches
    # together would not fit the host's memory before anything is allocated.
    total = (cfg.num_cpus * (cfg.l1i.size_bytes + cfg.l1d.size_bytes + cfg.l2.size_bytes)
             + cfg.sockets * cfg.llc.size_bytes)
    check_max(total, MAX_MACHINE_CACHE_BYTES, f"{src}: [cache] sizes x cores and sockets",
              "total cache (bytes)")
    dist = cfg.hops()
    for i in range(len(nodes)):
        for j in range(len(nodes)):
            if dist[i][j] < 0:
                raise HwemuError(f"{src}: [[link]]: node {j} cannot be reached from node {i}")
    return cfg


def param_table_markdown() -> str:
    """docs/machine.md's parameter table (made from the declarations; a test keeps the page
    equal to it): ``python -c "from hwemu.machine.config import param_table_markdown as t;
    print(t())"`` prints it."""
    lines = ["| key | unit | default | description |", "|---|---|---|---|"]
    lines += [f"| `{r['key']}` | {r['unit']} | {r['default']} | {r['description']} |"
              for r in param_rows()]
    return "\n".join(lines)


def param_rows() -> list[dict]:
    """The parameter table, for ``machine show --params`` and docs/machine.md."""
    rows = []
    for p in all_params():
        default = p.default if p.default not in (None, {}) else ""
        if isinstance(default, bool):
            default = "true" if default else "false"      # as written in TOML
        rows.append({"key": p.toml_key, "kind": p.kind, "unit": p.unit, "default": default,
                     "description": p.description})
    return rows
