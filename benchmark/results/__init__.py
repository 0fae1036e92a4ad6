"""The results layer: everything that writes or reads results goes through it.

- :mod:`~benchmark.results.schema`: the one result schema (per-frame table, missing records, summary
  columns) and reading a run folder's tables;
- :mod:`~benchmark.results.summary`: summaries over frames (with coverage) and missing records per method;
- :mod:`~benchmark.results.folder`: the run folder (layout, marker, checks, stale temporary files)
  and :mod:`~benchmark.results.lock` (one run per folder);
- :mod:`~benchmark.results.names`: safe file-system names for dataset, sequence and method names;
- :mod:`~benchmark.results.fingerprint`: what a stored result depends on;
- :mod:`~benchmark.results.store`: the append-only part store; :mod:`~benchmark.results.merge`: parts
  into the result table;
- :mod:`~benchmark.results.files`: atomic writes.

It imports nothing from the runner or the reports (data flows datasets -> adapters -> metrics ->
results -> reports) and does not load torch.
"""
