"""The evaluation engine behind ``cabench run``, ``cabench eval`` and ``cabench demo``: one path from a
run config to a run folder.

- :mod:`~benchmark.engine.plan`: the config's datasets, sequences, methods and protocols, as pairs
  (dataset, sequence, method) in sequence-major order;
- :mod:`~benchmark.engine.methods`: a method's frames for a sequence (stored, or rendered by an
  adapter) and the stamp of what they depend on, taken without rendering;
- :mod:`~benchmark.engine.parts`: the parts each pair must have and their fingerprints;
- :mod:`~benchmark.engine.compute`: computing the parts that are not stored yet;
- :mod:`~benchmark.engine.samples`: the sample strips of the report;
- :mod:`~benchmark.engine.launch`: several processes (accelerate / torchrun) and the device;
- :mod:`~benchmark.engine.outputs`: the result files of a merged run, and its values handed to a publisher
  (:func:`reports.publish.publish`: tables, plots, report);
- :mod:`~benchmark.engine.signals`: SIGTERM handled as an interruption.
:func:`benchmark.runner.run_config` puts them together. Results are stored and read only through
:mod:`benchmark.results`.
"""
