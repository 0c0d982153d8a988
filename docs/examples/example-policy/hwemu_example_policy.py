"""An example migration policy in its own package (docs/policies.md "Your own policy").

Every ``period`` it looks at the access samples of the last windows and moves the pages that
were accessed from a remote socket most often to the node of the CPU that accessed them, at
most ``budget`` pages per period: a sampling-based policy in about forty lines.
"""

from collections import Counter

from hwemu.policies import SERVED_REMOTE, MigrationPolicy, Param


class RemoteSampler(MigrationPolicy):
    """Move the most often remotely-sampled pages to their accessor's node, every period."""

    PARAMS = (
        Param("period", "time", "200us", "how often to migrate"),
        Param("budget", "int", 64, "pages moved at most per period"),
    )

    def attach(self, ctx):
        super().attach(ctx)
        self.tick_ps = self.p["period"]
        self.sample_every = 16
        self.heat = Counter()
        self.moved = 0

    def on_samples(self, s):
        for pid, vaddr, tid, served in zip(s.pid, s.vaddr, s.tid, s.served_from):
            if served == SERVED_REMOTE:
                self.heat[(int(pid), int(vaddr) >> 12, int(tid))] += 1

    def on_tick(self, now_ps):
        by_node = {}
        for (pid, vpn, tid), _ in self.heat.most_common(self.p["budget"]):
            page = self.ctx.page_at(pid, vpn << 12)
            node = self.ctx.cpu_node(self.ctx.thread_cpu(tid))
            if page is not None and page.node != node:
                by_node.setdefault(node, []).append(page)
        self.heat.clear()
        for node, pages in sorted(by_node.items()):
            self.moved += len(pages)
            self.ctx.migrate(pages, node, self.ctx.idle_cpu(node), reason="remote-sampler")

    def finish(self, now_ps):
        self.ctx.stats.add(f"policy.{self.name}", "pages_requested", self.moved, "pages")
