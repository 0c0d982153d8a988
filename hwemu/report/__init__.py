"""Reports: experiment cells, results tables, figures and report directories.

``compare`` runs cells one after another in this process; ``sweep`` (hwemu.report.sweep) runs
them on Dask. Both write the same report (hwemu.report.writer).
"""


def __getattr__(name):
    if name == "compare":
        from hwemu.report.compare import compare

        return compare
    if name == "write_report":
        from hwemu.report.writer import write_report

        return write_report
    if name == "results_table":
        from hwemu.report.table import results_table

        return results_table
    raise AttributeError(f"module 'hwemu.report' has no attribute {name!r}")


__all__ = ["compare", "write_report", "results_table"]
