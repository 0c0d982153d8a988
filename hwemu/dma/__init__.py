"""The page-copy DMA engine: the cycle model of rtl/page_copy_dma.v and its RTL harness.

The migration code costs an offloaded copy with::

    from hwemu.dma import DmaParams, copy_cycles, copy_time_ps

Everything that needs cocotb or a simulator (``axi_mem``, ``bench``, ``rtl``, ``calibrate``) is
imported only when used. See docs/dma.md.
"""

from hwemu.dma.model import (DmaParams, binding_bound, chain_cycles, copy_cycles, copy_time_ps,
                             fetch_cycles, steady_bytes_per_cycle)

__all__ = ["DmaParams", "binding_bound", "chain_cycles", "copy_cycles", "copy_time_ps",
           "fetch_cycles", "steady_bytes_per_cycle"]
