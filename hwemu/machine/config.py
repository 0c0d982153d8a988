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
from hwemu.machine.params import DRAM_PARAMS, LINK_PARAMS, NODE_PARAMS, PARAMS, all_params
from hwemu.units import (MAX_CACHE_BYTES, MAX_MACHINE_CACHE_BYTES, check_max, parse_bandwidth_bps,
                         parse_freq_hz, parse_size, parse_time_ps,
                         period_ps)

PRESET_DIR = Path(__file__).with_name("presets")
LINE_BYTES = 64


@dataclass(frozen=True, slots=True)
class CacheConfig:
    size_bytes: int
    ways: int
    latency_cycles: int
    policy: str

    @property
    def sets(self) -> int:
        return self.size_bytes // (LINE_BYTES * self.ways)


@dataclass(frozen=True, slots=True)
class DramConfig:
    type: str
    channels: int
    ranks: int
    banks: int
    row_bytes: int
    interleave_bytes: int
    tCL_ps: int
    tCWL_ps: int
    tRCD_ps: int
    tRP_ps: int
    tRAS_ps: int
    tBURST_ps: int
    tWR_ps: int
    tREFI_ps: int
    tRFC_ps: int
    page_policy: str
    mc_latency_ps: int
    bank_groups: int = 1
    tCCD_L_ps: int = 0
    tRRD_S_ps: int = 0
    tRRD_L_ps: int = 0
    tFAW_ps: int = 0
    tRTP_ps: int = 0
    tWTR_S_ps: int = 0
    tWTR_L_ps: int = 0
    tRTRS_ps: int = 0
    scheduler: str = "frfcfs"
    write_queue: int = 0
    write_high: int = 0
    write_low: int = 0

    @property
    def peak_bandwidth_bps(self) -> float:
        return self.channels * LINE_BYTES / (self.tBURST_ps * 1e-12)


@dataclass(frozen=True, slots=True)
class NodeConfig:
    id: int
    name: str
    socket: int
    size_bytes: int
    dram: DramConfig
    remote_trackers: int = 0

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


@dataclass(frozen=True, slots=True)
class PrefetchConfig:
    """The L2 stream prefetcher ([prefetch] table)."""
    enable: bool = False
    streams: int = 32
    distance: int = 20
    degree: int = 2


@dataclass(frozen=True, slots=True)
class OsCosts:
    """Kernel-side hardware costs the timing model does not simulate itself ([os] table,
    besides ``fault_cost``): TLB maintenance, IPIs, locked RMWs and the streamer's run-ahead
    during kernel copies and metadata walks. Defaults: 2-socket AMD EPYC 7763."""
    tlb_flush_page_ps: int = 100_000
    tlb_flush_all_ps: int = 250_000
    tlb_single_page_ceiling: int = 33
    ipi_send_ps: int = 50_000
    ipi_rtt_same_socket_ps: int = 1_200_000
    ipi_rtt_per_hop_ps: int = 1_300_000
    atomic_cycles: int = 20
    copy_prefetch_lines: int = 6
    metadata_prefetch_degree: int = 4


@dataclass(frozen=True, slots=True)
class ParametricCosts:
    """The calibrated numbers of the parametric OS-cost model ([parametric] table). Defaults:
    2-socket AMD EPYC 7763."""
    freq_hz: float = 2.45e9
    remote_distance: int = 32
    mem_latency_local_ps: int = 110_000
    mem_latency_remote_ps: int = 190_000
    cache_lines: int = 8192
    hit_cycles: int = 12
    copy_bw_local_bps: float = 14.0e9
    copy_bw_remote_bps: float = 11.1e9
    copy_startup_ps: int = 0
    fill_bw_bps: float = 20.0e9


@dataclass(frozen=True, slots=True)
class DmaConfig:
    """Page-copy DMA engines ([dma] table): the build parameters of rtl/page_copy_dma.v and
    its clock. ``engines`` = 0: the machine has none."""
    engines: int = 0
    data_width_bytes: int = 32
    burst_len: int = 64
    outstanding: int = 16
    write_outstanding: int = 16
    fifo_depth: int = 0
    clock_hz: float = 1e9
    interrupt_ps: int = 1_000_000


@dataclass(frozen=True, slots=True)
class MachineConfig:
    name: str
    description: str
    source: str
    sockets: int
    cores_per_socket: int
    freq_hz: float
    base_cpi: float
    lfb: int
    rob: int
    l1i: CacheConfig
    l1d: CacheConfig
    l2: CacheConfig
    llc: CacheConfig
    tlb: dict
    core_snoop_ps: int
    mesh_latency_ps: int
    fault_cost_ps: int
    nodes: tuple
    links: tuple
    superqueue: int = 10
    remote_trackers: int = 0
    prefetch: PrefetchConfig = PrefetchConfig()
    os: OsCosts = OsCosts()
    parametric: ParametricCosts = ParametricCosts()
    dma: DmaConfig = DmaConfig()

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

    def hops(self) -> list[list[int]]:
        """Link hops between every pair of nodes (shortest path)."""
        from hwemu.machine.interconnect import shortest_paths

        dist, _ = shortest_paths(self.num_nodes, [(l.a, l.b) for l in self.links])
        return dist


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
        key = f"[{p.section}] {p.key}" if p.section else p.key
        if isinstance(table, dict) and p.key in table:
            add(key, p, table[p.key], "set")
        else:
            add(key, p, p.default, "default")
    dram = d.get("dram", {}) if isinstance(d.get("dram", {}), dict) else {}
    for i, nd in enumerate(d.get("node", []) or []):
        for p in NODE_PARAMS:
            if p.key == "dram":
                continue
            add(f"[[node]] #{i} {p.key}", p, nd.get(p.key, p.default),
                "set" if p.key in nd else "default")
        own = nd.get("dram", {}) if isinstance(nd.get("dram", {}), dict) else {}
        for p in DRAM_PARAMS:
            if p.key in own:
                add(f"[[node]] #{i} dram.{p.key}", p, own[p.key], "set")
            elif p.key in dram:
                add(f"[[node]] #{i} dram.{p.key}", p, dram[p.key], "[dram]")
            else:
                add(f"[[node]] #{i} dram.{p.key}", p, p.default, "default")
    for i, ld in enumerate(d.get("link", []) or []):
        for p in LINK_PARAMS:
            add(f"[[link]] #{i} {p.key}", p, ld.get(p.key, p.default),
                "set" if p.key in ld else "default")
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
    """Reads the keys of one TOML table, converting with the table in params.py."""

    def __init__(self, src: str, label: str, table: dict, params):
        self.src = src
        self.label = label
        if not isinstance(table, dict):
            raise HwemuError(f"{src}: {label}: expected a table")
        self.table = table
        self.params = {p.key: p for p in params}
        unknown = [k for k in table if k not in self.params]
        if unknown:
            raise HwemuError(f"{src}: {label} {unknown[0]}: unknown key (known: "
                             f"{', '.join(self.params)})")

    def where(self, key: str) -> str:
        return f"{self.src}: {self.label} {key}".replace(":  ", ": ")

    def get(self, key: str):
        p = self.params[key]
        if key in self.table:
            raw = self.table[key]
        elif p.default is not None:
            raw = p.default
        else:
            raise HwemuError(f"{self.where(key)}: missing (required, {p.description})")
        w = self.where(key)
        kind = p.kind
        if kind == "size":
            return parse_size(raw, w)
        if kind == "time":
            return parse_time_ps(raw, w)
        if kind == "freq":
            return parse_freq_hz(raw, w)
        if kind == "bw":
            return parse_bandwidth_bps(raw, w)
        if kind == "int":
            if isinstance(raw, bool) or not isinstance(raw, int):
                raise HwemuError(f"{w}: expected an integer, got {raw!r}")
            return raw
        if kind == "float":
            if isinstance(raw, bool) or not isinstance(raw, (int, float)):
                raise HwemuError(f"{w}: expected a number, got {raw!r}")
            return float(raw)
        if kind == "bool":
            if not isinstance(raw, bool):
                raise HwemuError(f"{w}: expected true or false, got {raw!r}")
            return raw
        if kind == "str":
            if not isinstance(raw, str):
                raise HwemuError(f"{w}: expected a string, got {raw!r}")
            return raw
        if kind == "choice":
            if raw not in p.choices:
                raise HwemuError(f"{w}: {raw!r} is not one of {', '.join(p.choices)}")
            return raw
        if kind == "table":
            if not isinstance(raw, dict):
                raise HwemuError(f"{w}: expected a table")
            return raw
        if kind == "nodelist":
            if not (isinstance(raw, list) and all(isinstance(x, int) and not isinstance(x, bool)
                                                  for x in raw)):
                raise HwemuError(f"{w}: expected a list of node ids, got {raw!r}")
            return raw
        raise AssertionError(kind)

    def positive(self, key: str, minimum: int = 1):
        v = self.get(key)
        if v < minimum:
            raise HwemuError(f"{self.where(key)}: must be at least {minimum}, got {v}")
        return v


def _params_of(section: str):
    return [p for p in PARAMS if p.section == section]


def _cache(src: str, d: dict, name: str) -> CacheConfig:
    sec = _Section(src, f"[cache.{name}]", d.get("cache", {}).get(name, {}), _params_of(f"cache.{name}"))
    size = sec.positive("size", P_LINE := LINE_BYTES)
    check_max(size, MAX_CACHE_BYTES, sec.where("size"), "cache size (bytes)")
    ways = sec.positive("ways")
    lat = sec.positive("latency")
    if size % (LINE_BYTES * ways):
        raise HwemuError(f"{sec.where('size')}: {size} bytes is not a whole number of "
                         f"{ways}-way sets of {P_LINE}-byte lines")
    policy = sec.get("policy")
    if policy == "plru" and (ways & (ways - 1) or ways > 64):
        raise HwemuError(f"{sec.where('policy')}: tree PLRU needs a power-of-two number of ways "
                         f"of at most 64, not {ways}")
    return CacheConfig(size, ways, lat, policy)


def _watermarks(sec) -> dict:
    """write_high / write_low fractions -> entry counts (1 <= low < high <= write_queue)."""
    hi, lo, n = sec.get("write_high"), sec.get("write_low"), sec.get("write_queue")
    if not 0.0 < hi <= 1.0:
        raise HwemuError(f"{sec.where('write_high')}: must be in (0, 1], got {hi}")
    if not 0.0 <= lo < hi:
        raise HwemuError(f"{sec.where('write_low')}: must be in [0, write_high), got {lo}")
    if n <= 0:
        return {"write_high": 0, "write_low": 0}
    h = max(1, min(n, round(hi * n)))
    return {"write_high": h, "write_low": min(h - 1, round(lo * n))}


def _dram(src: str, label: str, table: dict) -> DramConfig:
    sec = _Section(src, label, table, DRAM_PARAMS)
    cfg = DramConfig(
        type=sec.get("type"), channels=sec.positive("channels"), ranks=sec.positive("ranks"),
        banks=sec.positive("banks"), row_bytes=sec.positive("row", LINE_BYTES),
        interleave_bytes=sec.positive("interleave", LINE_BYTES),
        tCL_ps=sec.positive("tCL"), tCWL_ps=sec.positive("tCWL"), tRCD_ps=sec.positive("tRCD"),
        tRP_ps=sec.positive("tRP"), tRAS_ps=sec.positive("tRAS"), tBURST_ps=sec.positive("tBURST"),
        tWR_ps=sec.get("tWR"), tREFI_ps=sec.positive("tREFI"), tRFC_ps=sec.get("tRFC"),
        page_policy=sec.get("page_policy"), mc_latency_ps=sec.get("mc_latency"),
        bank_groups=sec.positive("bank_groups"), tCCD_L_ps=sec.get("tCCD_L"),
        tRRD_S_ps=sec.get("tRRD_S"), tRRD_L_ps=sec.get("tRRD_L"), tFAW_ps=sec.get("tFAW"),
        tRTP_ps=sec.get("tRTP"), tWTR_S_ps=sec.get("tWTR_S"), tWTR_L_ps=sec.get("tWTR_L"),
        tRTRS_ps=sec.get("tRTRS"),
        scheduler=sec.get("scheduler"), write_queue=sec.positive("write_queue", 0),
        **_watermarks(sec),
    )
    if cfg.banks % cfg.bank_groups:
        raise HwemuError(f"{sec.where('bank_groups')}: {cfg.banks} banks do not divide into "
                         f"{cfg.bank_groups} bank groups")
    if cfg.write_queue > 1024:
        raise HwemuError(f"{sec.where('write_queue')}: at most 1024 entries, got {cfg.write_queue}")
    if cfg.row_bytes % LINE_BYTES or cfg.interleave_bytes % LINE_BYTES:
        raise HwemuError(f"{sec.where('row')}: row and interleave must be multiples of 64 bytes")
    if cfg.interleave_bytes > cfg.row_bytes:
        raise HwemuError(f"{sec.where('interleave')}: must not exceed the row size")
    if cfg.tRFC_ps >= cfg.tREFI_ps:
        raise HwemuError(f"{sec.where('tRFC')}: must be shorter than tREFI")
    return cfg


def _dma(sec) -> DmaConfig:
    """The [dma] table, checked against what the RTL can be built with (docs/dma.md)."""
    engines = sec.positive("engines", 0)
    if engines > 64:
        raise HwemuError(f"{sec.where('engines')}: at most 64 engines per socket, got {engines}")
    width = sec.get("data_width")
    if width not in (8, 16, 32):
        raise HwemuError(f"{sec.where('data_width')}: must be 8B, 16B or 32B (DATA_WIDTH 64, 128 "
                         f"or 256), got {width} bytes")
    burst = sec.positive("burst_len")
    if burst > 256:
        raise HwemuError(f"{sec.where('burst_len')}: must be 1..256, got {burst}")
    fifo = sec.positive("fifo_depth", 0)
    if fifo and fifo < min(burst, 4096 // width):
        raise HwemuError(f"{sec.where('fifo_depth')}: must hold one burst "
                         f"({min(burst, 4096 // width)} beats), got {fifo}")
    clock = sec.get("clock")
    if clock <= 0:
        raise HwemuError(f"{sec.where('clock')}: must be positive")
    return DmaConfig(engines, width, burst, sec.positive("outstanding"),
                     sec.positive("write_outstanding"), fifo, clock, sec.positive("interrupt", 0))


def from_dict(d: dict, src: str) -> MachineConfig:
    """Validate a merged TOML dict and build the MachineConfig."""
    known_tables = {"core", "cache", "tlb", "coherence", "uncore", "os", "dram", "node", "link",
                    "prefetch", "parametric", "dma"}
    top = {k: v for k, v in d.items() if k not in known_tables}
    sec = _Section(src, "", top, _params_of(""))
    name = sec.get("name")
    sockets = sec.positive("sockets")
    for k in ("cache",):
        if k in d and not isinstance(d[k], dict):
            raise HwemuError(f"{src}: [{k}]: expected a table")
        unknown = [c for c in d.get("cache", {}) if c not in ("l1i", "l1d", "l2", "llc")]
        if unknown:
            raise HwemuError(f"{src}: [cache.{unknown[0]}]: unknown cache (known: l1i, l1d, l2, llc)")
    core = _Section(src, "[core]", d.get("core", {}), _params_of("core"))
    tlbs = _Section(src, "[tlb]", d.get("tlb", {}), _params_of("tlb"))
    coh = _Section(src, "[coherence]", d.get("coherence", {}), _params_of("coherence"))
    unc = _Section(src, "[uncore]", d.get("uncore", {}), _params_of("uncore"))
    os_ = _Section(src, "[os]", d.get("os", {}), _params_of("os"))
    pfs = _Section(src, "[prefetch]", d.get("prefetch", {}), _params_of("prefetch"))
    par = _Section(src, "[parametric]", d.get("parametric", {}), _params_of("parametric"))
    dma = _dma(_Section(src, "[dma]", d.get("dma", {}), _params_of("dma")))
    base_cpi = core.get("base_cpi")
    if base_cpi <= 0:
        raise HwemuError(f"{core.where('base_cpi')}: must be positive")
    cores = core.positive("cores_per_socket")
    if cores > 64:
        raise HwemuError(f"{core.where('cores_per_socket')}: at most 64 cores per socket are supported")
    lfb = core.positive("lfb")
    if lfb > 64:
        raise HwemuError(f"{core.where('lfb')}: at most 64 line-fill buffers are supported")
    superqueue = core.positive("superqueue", 0) or lfb
    if superqueue > 64:
        raise HwemuError(f"{core.where('superqueue')}: at most 64 superqueue entries are supported")
    remote_trackers = unc.positive("remote_trackers", 0)
    if remote_trackers > 64:
        raise HwemuError(f"{unc.where('remote_trackers')}: at most 64 remote trackers are supported")
    streams = pfs.positive("streams")
    if streams > 256:
        raise HwemuError(f"{pfs.where('streams')}: at most 256 streams are supported")
    distance = pfs.positive("distance")
    if distance > 63:
        raise HwemuError(f"{pfs.where('distance')}: at most 63 lines (a stream stays in its 4 KiB "
                         f"page), got {distance}")
    prefetch = PrefetchConfig(pfs.get("enable"), streams, distance, pfs.positive("degree"))
    os_costs = OsCosts(
        tlb_flush_page_ps=os_.positive("tlb_flush_page"), tlb_flush_all_ps=os_.positive("tlb_flush_all"),
        tlb_single_page_ceiling=os_.positive("tlb_single_page_ceiling"),
        ipi_send_ps=os_.positive("ipi_send", 0), ipi_rtt_same_socket_ps=os_.positive("ipi_rtt_same_socket"),
        ipi_rtt_per_hop_ps=os_.positive("ipi_rtt_per_hop", 0), atomic_cycles=os_.positive("atomic_cycles", 0),
        copy_prefetch_lines=os_.positive("copy_prefetch_lines", 0),
        metadata_prefetch_degree=os_.positive("metadata_prefetch_degree", 0))
    remote_distance = par.get("remote_distance")
    if remote_distance <= 10:
        raise HwemuError(f"{par.where('remote_distance')}: must be above 10 (the local distance), "
                         f"got {remote_distance}")
    parametric = ParametricCosts(
        freq_hz=par.get("freq"), remote_distance=remote_distance,
        mem_latency_local_ps=par.positive("mem_latency_local"),
        mem_latency_remote_ps=par.positive("mem_latency_remote"),
        cache_lines=par.positive("cache_lines"), hit_cycles=par.positive("hit_cycles", 0),
        copy_bw_local_bps=par.get("copy_bw_local"), copy_bw_remote_bps=par.get("copy_bw_remote"),
        copy_startup_ps=par.positive("copy_startup", 0), fill_bw_bps=par.get("fill_bw"))
    if parametric.mem_latency_remote_ps < parametric.mem_latency_local_ps:
        raise HwemuError(f"{par.where('mem_latency_remote')}: must not be below mem_latency_local")
    tlb = {}
    for key in ("l1i", "l1d_4k", "l1d_2m", "stlb"):
        e = tlbs.positive(f"{key}_entries")
        w = tlbs.positive(f"{key}_ways")
        if e % w:
            raise HwemuError(f"{tlbs.where(key + '_entries')}: {e} entries is not a multiple of "
                             f"{w} ways")
        tlb[key] = (e, w)
    tlb["stlb_latency_cycles"] = tlbs.get("stlb_latency")
    tlb["page_walk_ps"] = tlbs.get("page_walk")

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
        size = ns.positive("size", 1 << 21)
        if size % (1 << 21):
            raise HwemuError(f"{ns.where('size')}: must be a multiple of 2MiB")
        rt = ns.positive("remote_trackers", -1)
        if rt > 64:
            raise HwemuError(f"{ns.where('remote_trackers')}: at most 64 remote trackers are supported")
        nodes.append(NodeConfig(i, ns.get("name") or f"node{i}", socket, size, dram,
                                remote_trackers if rt < 0 else rt))
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
        links.append(LinkConfig(i, ls.get("name") or f"link{i}", ends[0], ends[1],
                                ls.get("latency"), ls.get("bandwidth"), ls.get("header")))
    cfg = MachineConfig(
        name=name, description=sec.get("description"), source=src, sockets=sockets,
        cores_per_socket=cores, freq_hz=core.get("freq"), base_cpi=base_cpi, lfb=lfb,
        rob=core.positive("rob"),
        l1i=_cache(src, d, "l1i"), l1d=_cache(src, d, "l1d"), l2=_cache(src, d, "l2"),
        llc=_cache(src, d, "llc"), tlb=tlb, core_snoop_ps=coh.get("core_snoop"),
        mesh_latency_ps=unc.get("mesh_latency"), fault_cost_ps=os_.get("fault_cost"),
        nodes=tuple(nodes), links=tuple(links), superqueue=superqueue, prefetch=prefetch,
        remote_trackers=remote_trackers,
        os=os_costs, parametric=parametric, dma=dma,
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


def param_rows() -> list[dict]:
    """The parameter table, for ``machine show --params`` and docs."""
    rows = []
    for p in all_params():
        key = f"[{p.section}] {p.key}" if p.section else p.key
        if p.section in ("node", "link"):
            key = f"[[{p.section}]] {p.key}"
        default = p.default if p.default not in (None, {}) else ""
        if isinstance(default, bool):
            default = "true" if default else "false"      # as written in TOML
        rows.append({"key": key, "kind": p.kind, "unit": p.unit,
                     "default": default,
                     "description": p.description})
    return rows
