"""Whether a run folder's outputs are already those of a config: a rerun with nothing to do does nothing.

A run whose every number is stored still plans its parts (which loads the metric registry, and with
it torch), merges them, computes the summary's intervals (scipy), and rewrites the tables, plots
(matplotlib) and report; on a 2-core machine that is 10-15 s of imports and work that produce the
same files again. So the run writes, beside its outputs, the **publication stamp** of what they were
made from, and a later run whose stamp is equal (and whose outputs are all still there, unchanged)
prints them instead of making them again (``docs/startup.md`` has the figures).

The stamp covers everything the outputs depend on, taken without loading torch or any metric:

- the config, as its canonical TOML (metrics, options, protocols, methods, datasets, bootstrap);
- whether plots and the report were asked for;
- the code: the stamp (size, mtime, end blocks: :func:`benchmark.stamps.file_stamp`) of every file of
  the packages ``metrics``, ``benchmark``, ``reports``, ``baselines`` and ``reference`` (a metric's
  implementation, version or default changes a file), the shipped checkpoints excepted (an adapter's
  own fingerprint covers the checkpoint it renders with);
- the inputs: each sequence's ground-truth stamp (frames, masks and landmarks it gives the run) and
  each method's identity (its frames' content stamp, or its adapter's settings and fingerprint), as
  the engine's part fingerprints take them;
- the weights a metric may find: every file in the folders ``cabench weights`` searches (name, size,
  mtime), and every file a metric option names, since a weight file added or removed turns a missing
  metric into a number or back;
- and, checked beside it, the stored parts and every output file as they were written (one removed or
  edited by hand sends the run down its ordinary path).

Anything else (``--force``, a launch across processes) takes the ordinary path.
"""

from __future__ import annotations

import json
import os
from importlib.util import find_spec
from pathlib import Path
from typing import TYPE_CHECKING, Any

from benchmark.config import RunConfig, to_toml
from benchmark.results.files import atomic_write_text
from benchmark.stamps import file_stamp, text_stamp, tree_stamp

if TYPE_CHECKING:
    from benchmark.engine.methods import Adapters

STAMP_FILE = "published.json"
PACKAGES = ("metrics", "benchmark", "reports", "baselines", "reference")
SKIPPED = ("__pycache__", "checkpoints")


def code_stamp() -> str:
    """The stamp of every file of the project's packages (see the module docstring)."""
    stamps = []
    for package in PACKAGES:
        spec = find_spec(package)
        for root in (spec.submodule_search_locations or []) if spec else []:
            for folder, subfolders, files in os.walk(root):
                subfolders[:] = sorted(d for d in subfolders if d not in SKIPPED)
                stamps += [f"{Path(folder, name).relative_to(root)}={file_stamp(Path(folder, name))}"
                           for name in sorted(files) if not name.endswith(".pyc")]
    return text_stamp(*stamps)


def weights_stamp(config: RunConfig) -> str:
    """The files a metric may load: those in the weight search folders and those its options name."""
    from metrics.weights import search_dirs

    stamps = []
    for folder in search_dirs():
        try:
            stamps += [f"{entry}={file_stamp(entry)}" for entry in sorted(folder.iterdir()) if entry.is_file()]
        except OSError as error:  # absent or unreadable: that is what the metrics will find too
            stamps.append(f"{folder}: {type(error).__name__}")
    for value in _option_values(config.options):
        if isinstance(value, str) and os.path.isfile(value):
            stamps.append(f"{value}={file_stamp(value)}")
    return text_stamp(*stamps)


def _option_values(options: Any) -> list[Any]:
    if isinstance(options, dict):
        return [v for value in options.values() for v in _option_values(value)]
    return [options]


def inputs_stamp(config: RunConfig, adapters: Adapters) -> str:
    """Each sequence's ground-truth stamp and each method's identity, as the engine's plan takes them
    (``adapters``: the run's, :func:`benchmark.engine.methods.open_adapters`)."""
    from benchmark.engine.methods import MethodSource
    from benchmark.engine.plan import open_datasets, truth_stamp

    stamps = []
    for dataset, sequences in open_datasets(config):
        for sequence in sequences:
            ids = sequence.split_ids(config.split)
            stamps.append(truth_stamp(config, sequence, ids))
            for method in config.methods:
                identity = MethodSource(method, dataset.name, sequence, adapters).identity(ids)
                stamps.append(json.dumps(identity, sort_keys=True, default=str))
    return text_stamp(*stamps)


def publication_stamp(config: RunConfig, adapters: Adapters, plots: bool, report: bool) -> str | None:
    """The stamp of everything a run's outputs are made from (see the module docstring); None where an
    input cannot be read (the run's ordinary path then reports the problem, in its order of checks)."""
    from benchmark.results.fingerprint import cabench_version
    from metrics.errors import CabenchError

    try:
        return text_stamp(to_toml(config), f"plots={plots}", f"report={report}", cabench_version(), code_stamp(),
                          weights_stamp(config), inputs_stamp(config, adapters))
    except (CabenchError, OSError, ValueError):
        return None


def record(meta: Path, out: Path, stamp: str, files: list[Path], reused: int) -> None:
    """Write the stamp of the outputs just written, with the stamp of each output file."""
    outputs = {str(path.relative_to(out)): file_stamp(path) for path in files if path.is_file()}
    atomic_write_text(meta / STAMP_FILE, json.dumps({"stamp": stamp, "outputs": outputs, "results": reused,
                                                     "parts": _parts_stamp(out)}, indent=1, sort_keys=True) + "\n")


def _parts_stamp(out: Path) -> str:
    """The stored parts as they are (a part removed or edited by hand is looked at again by the run)."""
    return tree_stamp(out / "parts") if (out / "parts").is_dir() else ""


def published(meta: Path, out: Path, stamp: str | None) -> dict | None:
    """The record of the outputs in ``out`` when they were made from ``stamp`` and are all still there
    as written; else None."""
    if stamp is None:
        return None
    try:
        stored = json.loads((meta / STAMP_FILE).read_text())
    except (OSError, ValueError):
        return None
    if stored.get("stamp") != stamp or not stored.get("outputs") or stored.get("parts") != _parts_stamp(out):
        return None
    for name, written in stored["outputs"].items():
        try:
            if file_stamp(out / name) != written:
                return None
        except OSError:
            return None
    return stored


def forget(meta: Path) -> None:
    """Drop the record (before outputs are rewritten: a run stopped halfway leaves none behind)."""
    (meta / STAMP_FILE).unlink(missing_ok=True)
