"""Property: random interleavings of loads, stores, faults and migrations (with backouts from
pins, writeback, held page locks and a full target node) never lose a write and leave every
page consistent."""

from hypothesis import HealthCheck, event, given, settings, strategies as st

from hwemu.engine import Sleep
from hwemu.linux.kernel import Kernel
from hwemu.linux.mempolicy import MPOL_MF_MOVE, MPOL_MF_MOVE_ALL, Mempolicy
from hwemu.linux.mm import GUP_PIN_COUNTING_BIAS, PG, PteKind, VmaKind
from hwemu.linux.syscalls import mbind, migrate_pages, move_pages

from linux_testkit import FixedHardware

P = 4096
ANON1 = 0x10_0000_0000
SHM1 = 0x11_0000_0000
FILE1 = 0x12_0000_0000
SHM2 = 0x21_0000_0000
FILE2 = 0x22_0000_0000
THP1 = 0x13_0000_0000
N_ANON, N_SHM, N_FILE = 6, 3, 3

# Targets: (key, [(tid, addr) that reach it]); tids 1, 2 belong to pid 1, tid 3 to pid 2.
TARGETS = ([(("anon", i), [(1, ANON1 + i * P), (2, ANON1 + i * P)]) for i in range(N_ANON)]
           + [(("shm", i), [(1, SHM1 + i * P), (3, SHM2 + i * P)]) for i in range(N_SHM)]
           + [(("file", i), [(2, FILE1 + i * P), (3, FILE2 + i * P)]) for i in range(N_FILE)]
           + [(("thp", i), [(1, THP1 + i * P), (2, THP1 + i * P)]) for i in (0, 7)])
PID_OF = {1: 1, 2: 1, 3: 2}

t_delay = st.integers(0, 1_500_000)
target = st.integers(0, len(TARGETS) - 1)
via = st.integers(0, 1)
node = st.integers(0, 2)
op = st.one_of(
    st.tuples(st.just("store"), t_delay, target, via),
    st.tuples(st.just("load"), t_delay, target, via),
    st.tuples(st.just("move_pages"), t_delay, st.lists(st.tuples(target, via), min_size=1, max_size=5),
              node, st.booleans()),
    st.tuples(st.just("migrate_pages"), t_delay, st.sampled_from([1, 2]), node, node, st.booleans()),
    st.tuples(st.just("mbind"), t_delay, st.integers(0, N_ANON - 1), node),
    st.tuples(st.just("pin"), t_delay, target, via, st.integers(1_000_000, 30_000_000), st.sampled_from(["pin", "get"])),
    st.tuples(st.just("lock"), t_delay, target, via, st.integers(1_000_000, 20_000_000)),
    st.tuples(st.just("pin_and_move"), t_delay, target, via, node, st.integers(1_000_000, 30_000_000)),
    st.tuples(st.just("writeback"), t_delay, target, via, st.integers(1_000_000, 20_000_000)),
)


class FixedDmaHardware(FixedHardware):
    """The mock hardware with one page-copy engine per socket taking 2 us per folio copy (long,
    so that many accesses meet the batch's migration entries)."""

    dma_engines = 1
    dma_interrupt_ps = 1_000_000

    def dma_copy_ps(self, cpu, src_paddr, dst_paddr, nbytes, at_ps, desc_paddr=None):
        return 2_000_000


def build(small_node2: bool, dma: bool = False):
    if dma:
        from hwemu.linux.copy import make_copy_engine

        hw = FixedDmaHardware(nodes=3, cpus_per_node=2, frames=2048)
        k = Kernel(hw, copy_engine=make_copy_engine("dma", hw))
        assert k.copy_engine.batches
    else:
        k = Kernel(FixedHardware(nodes=3, cpus_per_node=2, frames=2048))
    k.create_process(1)
    k.create_process(2)
    k.add_thread(1, 1, 0)
    k.add_thread(1, 2, 2)
    k.add_thread(2, 3, 4)
    k.mmap(1, ANON1, N_ANON * P, VmaKind.ANON)
    k.mmap(1, SHM1, N_SHM * P, VmaKind.SHARED, file="shm")
    k.mmap(2, SHM2, N_SHM * P, VmaKind.SHARED, file="shm")
    k.mmap(1, FILE1, N_FILE * P, VmaKind.FILE, file="data")
    k.mmap(2, FILE2, N_FILE * P, VmaKind.FILE, file="data")
    k.mmap(1, THP1, 2 << 20, VmaKind.ANON, thp=True)
    if small_node2:
        a = k.alloc.nodes[2]
        while a.free_count > 2:             # leave two frames: migrations to node 2 hit ENOMEM
            a.alloc(0)
    return k


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=st.lists(op, min_size=6, max_size=30), small_node2=st.booleans())
def test_no_write_is_ever_lost(ops, small_node2):
    check_no_write_lost(ops, small_node2)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=st.lists(op, min_size=6, max_size=30), small_node2=st.booleans())
def test_no_write_is_lost_with_batched_dma_copies(ops, small_node2):
    """The same with the copies of each migration batch done ahead of its move phase on a DMA
    engine (Migrator.step_12_batch_copy)."""
    check_no_write_lost(ops, small_node2, dma=True)


def check_no_write_lost(ops, small_node2, dma=False):
    k = build(small_node2, dma)
    k.access_log = []
    eng = k.engine
    written: dict = {}       # key -> every value stored
    loads = []               # (key, value)
    pins_live = []

    def addr_of(ti, v):
        key, routes = TARGETS[ti]
        return key, routes[v]

    def store(ti, v):
        key, (tid, addr) = addr_of(ti, v)
        proc = k.access(tid, addr, True)
        proc.on_done.append(lambda p: written.setdefault(key, []).append(p.value[1]))

    def load(ti, v):
        key, (tid, addr) = addr_of(ti, v)
        proc = k.access(tid, addr, False)
        proc.on_done.append(lambda p: loads.append((key, p.value[1])))

    def page_of(ti, v):
        _, (tid, addr) = addr_of(ti, v)
        return k.follow_page(PID_OF[tid], addr)

    def do(o):
        kind = o[0]
        if kind == "store":
            store(o[2], o[3])
        elif kind == "load":
            load(o[2], o[3])
        elif kind == "move_pages":
            _, _, sel, nd, move_all = o
            # The caller is a thread of the process owning the first address.
            _, (tid, _) = addr_of(*sel[0])
            pid = PID_OF[tid]
            addrs = [a for ti, v in sel for (t, a) in [addr_of(ti, v)[1]] if PID_OF[t] == pid]
            eng.spawn(move_pages(k, k.threads[tid].cpu, pid, addrs, [nd] * len(addrs),
                                 MPOL_MF_MOVE_ALL if move_all else 0), k.threads[tid].cpu)
        elif kind == "migrate_pages":
            _, _, pid, a, b, move_all = o
            cpu = 1 if pid == 1 else 5
            eng.spawn(migrate_pages(k, cpu, pid, [a], [b], move_all), cpu)
        elif kind == "mbind":
            _, _, i, nd = o
            eng.spawn(mbind(k, 3, 1, ANON1 + i * P, P, Mempolicy("bind", (nd,)), MPOL_MF_MOVE), 3)
        elif kind == "pin":
            _, _, ti, v, dur, how = o
            key, (tid, addr) = addr_of(ti, v)
            pid = PID_OF[tid]

            def pinner():
                pages = yield from k.pin_user_pages_gen(pid, addr, 1, how)
                pins_live.append(pages)
                yield Sleep(dur)
                k.unpin_user_pages(pages, how)
                pins_live.remove(pages)
            eng.spawn(pinner(), k.threads[tid].cpu)
        elif kind == "pin_and_move":
            _, _, ti, v, nd, dur = o
            do(("pin", 0, ti, v, dur, "pin"))
            do(("move_pages", 0, [(ti, v)], nd, True))
        elif kind == "lock":
            page = page_of(o[2], o[3])
            if page is not None:
                k.hold_page_lock(page, o[4])
        elif kind == "writeback":
            page = page_of(o[2], o[3])
            if page is not None and not page.test(PG.WRITEBACK):
                k.start_writeback(page, o[4])

    # Every target starts populated (first touch by policy), then the random operations run.
    for ti in range(len(TARGETS)):
        store(ti, ti % 2)
    eng.run()
    t = eng.now_ps
    for o in ops:
        t += o[1]
        eng.call_at(t, do, o)
    eng.run(limit=5_000_000)

    for stat in ("pages_migrated", "failed_EAGAIN", "failed_ENOMEM", "failed_EBUSY",
                 "lock_wait_time", "writeback_wait_time"):
        if k.counter("linux.migrate", stat):
            event(stat)
    if k.counter("linux.migrate", "thp_split"):
        event("THP split")
    if k.counter("linux.migrate", "thp_migrated"):
        event("THP migrated")
    if k.counter("linux.fault", "migration_entry_faults"):
        event("access waited on a migration entry")
    # 1. Nothing left half-done.
    assert not pins_live
    for mm in k.mms.values():
        for e in list(mm.ptes.values()) + list(mm.pmds.values()):
            assert e.kind is not PteKind.MIGRATION
    for f in k.files.values():
        assert f.lock_holder is None
    # 2. No lost write: every target holds the last value stored to it.
    for key, values in written.items():
        routes = dict(TARGETS)[key]
        tid, addr = routes[0]
        assert k.read_now(PID_OF[tid], addr) == max(values), key
        tid2, addr2 = routes[1]
        assert k.read_now(PID_OF[tid2], addr2) == max(values), key
    for key, value in loads:
        assert value == 0 or value in written.get(key, []), (key, value)
    # Every load returned exactly the last value stored to its target before it (through
    # either mapping of a shared page), in the order the accesses reached memory.
    key_of = {(PID_OF[tid], addr): key for key, routes in TARGETS for tid, addr in routes}
    last = {}
    for _, tid, addr, is_write, value in k.access_log:
        key = key_of[(PID_OF[tid], addr)]
        if is_write:
            assert value > last.get(key, 0), (key, value)
            last[key] = value
        else:
            assert value == last.get(key, 0), (key, value, last.get(key))
    # 3. Every page consistent: on an LRU list, unlocked, references = mappings (+ cache).
    in_cache = {id(p) for f in k.files.values() for p in f.pages.values()}
    for p in k.pages.values():
        assert not p.test(PG.LOCKED) and not p.test(PG.WRITEBACK)
        assert p.test(PG.LRU) and p.lru is not None, p
        expected = p.mapcount + (1 if id(p) in in_cache else 0)
        assert p.refcount == expected, p
        assert p.refcount < GUP_PIN_COUNTING_BIAS
    mapped = {}
    for mm in k.mms.values():
        for e in list(mm.ptes.values()) + list(mm.pmds.values()):
            if e.kind is PteKind.PRESENT:
                mapped[e.pfn] = mapped.get(e.pfn, 0) + 1
    for pfn, n in mapped.items():
        assert k.pages[pfn].mapcount == n
    # 4. Frames: every used frame is a page or a page table.
    tables = sum(len(mm.pte_tables) + len(mm.pmd_tables) for mm in k.mms.values())
    used = sum(a.capacity - a.free_count for a in k.alloc.nodes)
    filler = 0
    if small_node2:
        filler = k.alloc.nodes[2].capacity - 2
    assert used == sum(p.nr_pages for p in k.pages.values()) + tables + filler
    if dma:
        # every folio that moved was copied by a batch copy, none on the CPU
        assert k.counter("linux.migrate", "batch_copies") or not k.counter("linux.migrate",
                                                                              "pages_migrated")
        event(f"dma batch copies: {min(k.counter('linux.migrate', 'batch_copies'), 3)}")
