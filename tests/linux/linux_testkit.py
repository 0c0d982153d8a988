"""Shared test kit for the OS-model tests: a fixed-cost mock hardware (every primitive has one
exact price, so step costs can be asserted exactly) and small kernels."""



from hwemu.linux.hw import PAGE_SHIFT
from hwemu.linux.kernel import Kernel
from hwemu.linux.mm import VmaKind

LINE_PS = 10_000        # every cache-line access: 10 ns
ATOMIC_PS = 5_000       # a locked RMW adds 5 ns
CYCLE_PS = 1            # one "cycle" of kernel code: 1 ps (so cycle counts read directly)
FLUSH_PS = 100_000      # local TLB flush
IPI_PS = 2_000_000      # IPI round trip to any other CPU
COPY_PS_PER_BYTE = 100  # 4 KiB copy = 409.6 ns


class FixedHardware:
    """Mock hardware: 2 nodes x 2 CPUs, 8 MiB per node, constant primitive costs."""

    def __init__(self, nodes=2, cpus_per_node=2, frames=2048):
        self.num_nodes = nodes
        self.num_cpus = nodes * cpus_per_node
        self._cpn = cpus_per_node
        self._frames = frames
        self.calls = []

    def cpu_node(self, cpu):
        return cpu // self._cpn

    def distance(self, a, b):
        return 10 if a == b else 20

    def node_start_pfn(self, node):
        return node * self._frames

    def node_frames(self, node):
        return self._frames

    def cycles_ps(self, cpu, cycles):
        return cycles * CYCLE_PS

    def mem_access_ps(self, cpu, paddr, write, atomic, at_ps):
        self.calls.append(("mem", cpu, paddr >> 6, write, atomic))
        return LINE_PS + (ATOMIC_PS if atomic else 0)

    def flush_tlb(self, cpu, targets, pages, at_ps, pid=None, vaddrs=()):
        targets = set(targets)
        self.calls.append(("flush", cpu, tuple(sorted(targets)), pages))
        cost = FLUSH_PS if cpu in targets else 0
        if targets - {cpu}:
            cost = max(cost, IPI_PS)
        return cost

    def ipi_count(self, cpu, targets):
        return len(set(targets) - {cpu})

    def copy_ps(self, cpu, src_paddr, dst_paddr, nbytes, at_ps):
        return nbytes * COPY_PS_PER_BYTE

    def fill_ps(self, cpu, dst_paddr, nbytes, at_ps):
        return nbytes


BASE = 0x10_0000_0000


def run(k, gen, cpu=0):
    proc = k.engine.spawn(gen, cpu)
    return k.engine.run_process(proc)


def touch(k, tid, addr, write=True):
    return k.engine.run_process(k.access(tid, addr, write))


def make(hw=None, tlb_batch=True):
    """A kernel with process 1 (thread 1 on CPU 0) and an anonymous VMA of 64 pages at BASE."""
    k = Kernel(hw or FixedHardware(), tlb_batch=tlb_batch)
    k.create_process(1)
    k.add_thread(1, 1, 0)
    k.mmap(1, BASE, 64 << PAGE_SHIFT, VmaKind.ANON)
    return k


