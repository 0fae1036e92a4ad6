"""`cabench run`, `cabench eval` and `cabench demo`: a run config in, a run folder out.

:func:`run_config` is the one path: check and lock the output folder before any work, plan the
pairs (dataset, sequence, method; sequence-major) and their parts' fingerprints, compute what is
not stored (this process's share when launched as several), merge the parts into the result
table and write the result files; the tables, plots and report are written by the ``publish``
function the caller gives (the commands give :func:`reports.publish.publish`). The modules of :mod:`benchmark.engine` do each
step; results are stored and read through :mod:`benchmark.results`. An interruption (Ctrl-C,
SIGTERM) keeps every batch stored so far; running the same command again resumes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from benchmark.config import RunConfig
from benchmark.engine.launch import launch
from benchmark.engine.methods import Adapters, open_adapters, open_config_file
from benchmark.engine.plan import protocols_of
from benchmark.engine.published import forget, publication_stamp, published, record
from benchmark.engine.signals import terminate_as_exception
from benchmark.results.folder import RunFolder
from metrics.device import check_device, resolve_device
from metrics.errors import Terminated

if TYPE_CHECKING:
    from benchmark.engine.outputs import Publisher

# The engine's computing and publishing modules (and with them the metric registry, torch, scipy and
# matplotlib) are imported where they are used: a run whose outputs are up to date needs none of them.


@dataclass
class RunReport:
    out: Path
    per_frame: pd.DataFrame
    summary: pd.DataFrame
    missing: pd.DataFrame
    computed_frames: int = 0
    reused_frames: int = 0
    files: list[Path] = field(default_factory=list)
    computed_parts: list[str] = field(default_factory=list)  # "dataset/sequence/method/protocol/metric"
    sets: pd.DataFrame | None = None  # set-level rows (FID, KID): benchmark.engine.sets
    metadata: dict = field(default_factory=dict)  # what metadata.json holds (benchmark.engine.metadata)


def _selection(config: RunConfig) -> tuple[list[str], dict, list[str]]:
    """The per-frame metrics, every selected metric's options (set metrics' included) and the protocols."""
    from benchmark.engine.sets import set_metric_names
    from benchmark.evaluation import parse_metrics, split_options

    metrics = parse_metrics(config.metrics)
    frame_metrics = [name for name in metrics if name not in set_metric_names(metrics)]
    return frame_metrics, split_options(metrics, config.options), protocols_of(config)


def load_config(path: str | Path) -> RunConfig:
    """Read a TOML run config as ``cabench run`` does: the schema and the adapters' settings checked in
    one pass (every violation one line naming the file and key path), the adapters' relative path
    settings resolved against the config's folder
    (:func:`benchmark.engine.methods.open_config_file`, whose adapters ``cabench run`` hands on to
    :func:`run_config`)."""
    return open_config_file(path)[0]


def claim_folder(out: str | Path) -> RunFolder:
    """Check ``out`` and make it a run folder (for callers that write into it before the run)."""
    folder = RunFolder(out)
    folder.check()
    with folder.lock():
        folder.prepare()
    return folder


def run_config(config: RunConfig, force: bool = False, progress: bool = True, shard: tuple[int, int] | None = None,
               plots: bool = True, report: bool = True, log: Callable[[str], None] = print,
               publish: Publisher | None = None, adapters: Adapters | None = None,
               notes: Sequence[str] = ()) -> RunReport | None:
    """Run ``config``: compute what is not stored, then (on the merging process) merge and write the outputs.

    publish: writes the tables, plots (``plots``) and report (``report``) from the run's values, in
    the locked folder (:func:`reports.publish.publish`); None writes the result files only.

    shard: (index, count) to run only pairs index, index+count, ... and not merge; None takes the
    shard from ``accelerate launch`` when it started this process, else runs everything.
    adapters: the methods' adapters, with the config they were opened with
    (:func:`benchmark.engine.methods.open_config`); None: checked and built here, before any work
    (:func:`~benchmark.engine.methods.open_adapters`), each once for every sequence.
    notes: lines for the reader of the outputs (what a row means), kept in ``metadata.json`` as ``notes``,
    which the tables and report show above their tables.

    Returns None on a process that does not merge.
    """
    if adapters is None:
        config, adapters = open_adapters(config)
    if check_device(config.device, "[run] device") != "cpu":  # the CPU is always there (and needs no torch to say so)
        resolve_device(config.device, "[run] device")  # before any work: a device that is not there stops the run
    folder = RunFolder(config.out)
    folder.check()
    stamp = publication_stamp(config, adapters, plots, report)  # reads inputs only, as planning does; loads no metric
    done = None if force or _launched(shard) else published(folder.meta, folder.path, stamp)
    if done is not None:  # outputs made from exactly this: print them, make nothing again
        log(f"reused {done['results']} stored (frame, metric) results and computed 0 (100% reused); "
            "the outputs are up to date")
        return _stored_report(folder, done)
    from benchmark.engine.compute import PartComputer
    from benchmark.engine.parts import plan_run

    metrics, options, protocols = _selection(config)
    plans = plan_run(config, adapters, metrics, options, protocols)  # reads inputs only: bad input leaves no folder behind
    share = launch(config.device, shard)
    with folder.lock(share.lock_shard) as lock, terminate_as_exception():
        folder.prepare()
        if lock.exclusive:
            folder.clean_temporaries()
        runner = PartComputer(config, folder, metrics, options, force=force, progress=progress, log=log)
        index, count = share.shard
        try:
            runner.run(plans[index::count], share.device)
        except (KeyboardInterrupt, Terminated) as stop:
            what = "terminated (SIGTERM)" if isinstance(stop, Terminated) else "interrupted"
            raise type(stop)(f"{what}; the {runner.computed} values computed before are stored in {folder.parts}: "
                             "run the same command again to resume") from None
        share.wait_for_everyone()
        if not share.merges:
            return None
        total = runner.computed + runner.reused
        if total:
            log(f"reused {runner.reused} stored (frame, metric) results and computed {runner.computed} "
                f"({100.0 * runner.reused / total:.0f}% reused)")
        sets, set_paths = _sets(folder, config, plans, options, protocols, share.device, log)
        result = _publish(folder, config, plans, protocols, plots, report, share.device, publish, sets, notes)
        result.sets, result.files = sets, [*result.files, *set_paths]
        if share.shard == (0, 1) and stamp is not None:  # one process saw every input: its stamp is the outputs'
            record(folder.meta, folder.path, stamp, result.files, runner.computed + runner.reused)
    result.computed_frames, result.reused_frames = runner.computed, runner.reused
    result.computed_parts = runner.computed_parts
    return result


def merge_run(config: RunConfig, plots: bool = True, report: bool = True,
              publish: Publisher | None = None, adapters: Adapters | None = None) -> RunReport:
    """Merge the stored parts of ``config`` (every shard's) and write the outputs (``adapters``: see
    :func:`run_config`)."""
    from benchmark.engine.parts import plan_run

    if adapters is None:
        config, adapters = open_adapters(config)
    metrics, options, protocols = _selection(config)
    folder = RunFolder(config.out)
    folder.check()
    plans = plan_run(config, adapters, metrics, options, protocols)
    with folder.lock(), terminate_as_exception():
        folder.prepare()
        device = launch(config.device, (0, 1)).device
        sets, set_paths = _sets(folder, config, plans, options, protocols, device, print)
        result = _publish(folder, config, plans, protocols, plots, report, device, publish, sets)
        result.sets, result.files = sets, [*result.files, *set_paths]
        return result


def _sets(folder: RunFolder, config: RunConfig, plans, options: dict, protocols: list[str], device: str,
          log: Callable[[str], None]) -> tuple[pd.DataFrame | None, list[Path]]:
    """The set-level metrics (FID, KID) of the run (benchmark.engine.sets) and the files written
    (``set_metrics.csv``); computed before the tables are published, which show them."""
    from benchmark.engine.sets import compute_sets, set_metric_names, write_sets
    from benchmark.evaluation import parse_metrics

    names = set_metric_names(parse_metrics(config.metrics))
    if not names:
        return None, []
    rows = compute_sets(folder, config, plans, names, options, protocols, device, log)
    return rows, write_sets(folder, rows)


def _launched(shard: tuple[int, int] | None) -> bool:
    """Whether this process is one of several (a shard given, or a launch that will give one)."""
    import os

    return (shard is not None and shard != (0, 1)) or (shard is None and int(os.environ.get("WORLD_SIZE", "1")) > 1)


def _stored_report(folder: RunFolder, done: dict) -> RunReport:
    """The report of a run whose outputs are up to date, read back from them."""
    import json

    out = folder.path
    metadata = json.loads((out / "metadata.json").read_text()) if (out / "metadata.json").is_file() else {}
    sets = pd.read_csv(out / "set_metrics.csv") if (out / "set_metrics.csv").is_file() else None
    return RunReport(out, pd.read_csv(out / "per_frame.csv"), pd.read_csv(out / "summary.csv"),
                     pd.read_csv(out / "missing.csv"), reused_frames=int(done["results"]),
                     files=[out / name for name in done["outputs"]], metadata=metadata, sets=sets)


def _publish(folder: RunFolder, config: RunConfig, plans, protocols: list[str], plots: bool, report: bool,
             device: str, publish: Publisher | None, sets: pd.DataFrame | None = None,
             notes: Sequence[str] = ()) -> RunReport:
    from benchmark.engine.metadata import run_metadata
    from benchmark.engine.outputs import write_outputs
    from benchmark.results.merge import merge
    from benchmark.results.summary import summarize

    forget(folder.meta)  # outputs about to change: no stamp claims them until they are all written
    per_frame, missing = merge(folder, [plan.stored for plan in plans])
    summary = summarize(per_frame, bootstrap=config.bootstrap)
    metadata = run_metadata(config, plans, per_frame, protocols, device,
                            lambda stored: folder.pair_folder(stored.dataset, stored.sequence, stored.method))
    if notes:
        metadata["notes"] = list(notes)
    files = write_outputs(folder, config, per_frame, missing, protocols, plots=plots, report=report,
                          summary=summary, metadata=metadata, publish=publish, sets=sets)
    return RunReport(folder.path, per_frame, summary, missing, files=files, metadata=metadata)
