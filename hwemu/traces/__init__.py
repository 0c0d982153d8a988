"""Traces: the native format (:mod:`.format`), importers for lackey/pin/champsim/csv
(:mod:`.importers`), recording under Valgrind with hwemu's own tool (:mod:`.record`), synthetic
traces (:mod:`.synth`) and summaries (:mod:`.info`). See docs/traces.md."""
