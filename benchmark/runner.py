"""`cabench run`, `cabench eval` and `cabench demo`: a run config in, a run folder out.

:func:`run_config` is the one path: check and lock the output folder before any work, plan the
pairs (dataset, sequence, method; sequence-major) and their parts' fingerprints, compute what is
not stored (this process's share when launched as several), merge the parts into the result
table and write the tables, plots and report. The modules of :mod:`benchmark.engine` do each
step; results are stored and read through :mod:`benchmark.results`. An interruption (Ctrl-C,
SIGTERM) keeps every batch stored so far; running the same command again resumes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from benchmark.config import RunConfig, absolute_paths
from benchmark.engine.compute import Runner
from benchmark.engine.launch import launch
from benchmark.engine.metadata import run_metadata
from benchmark.engine.parts import plan_run
from benchmark.engine.plan import protocols_of
from benchmark.engine.publish import write_outputs
from benchmark.engine.sets import compute_sets, set_metric_names, write_sets
from benchmark.engine.signals import terminate_as_exception
from benchmark.results.folder import RunFolder
from benchmark.results.merge import merge
from benchmark.results.summary import summarize
from metrics.device import resolve_device
from metrics.errors import Terminated


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
    from benchmark.evaluation import parse_metrics, split_options

    metrics = parse_metrics(config.metrics)
    frame_metrics = [name for name in metrics if name not in set_metric_names(metrics)]
    return frame_metrics, split_options(metrics, config.options), protocols_of(config)


def claim_folder(out: str | Path) -> RunFolder:
    """Check ``out`` and make it a run folder (for callers that write into it before the run)."""
    folder = RunFolder(out)
    folder.check()
    with folder.lock():
        folder.prepare()
    return folder


def run_config(config: RunConfig, force: bool = False, progress: bool = True, shard: tuple[int, int] | None = None,
               plots: bool = True, report: bool = True, log: Callable[[str], None] = print) -> RunReport | None:
    """Run ``config``: compute what is not stored, then (on the merging process) merge and write the outputs.

    shard: (index, count) to run only pairs index, index+count, ... and not merge; None takes the
    shard from ``accelerate launch`` when it started this process, else runs everything.
    Returns None on a process that does not merge.
    """
    config = absolute_paths(config)
    resolve_device(config.device, "[run] device")  # before any work: a device that is not there stops the run
    metrics, options, protocols = _selection(config)
    folder = RunFolder(config.out)
    folder.check()
    plans = plan_run(config, metrics, options, protocols)  # reads inputs only: bad input leaves no folder behind
    share = launch(config.device, shard)
    with folder.lock(share.lock_shard) as lock, terminate_as_exception():
        folder.prepare()
        if lock.exclusive:
            folder.clean_temporaries()
        runner = Runner(config, folder, metrics, options, force=force, progress=progress, log=log)
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
        result = _publish(folder, config, plans, protocols, plots, report, share.device)
        result.sets = _sets(folder, config, plans, options, protocols, share.device, log)
    result.computed_frames, result.reused_frames = runner.computed, runner.reused
    result.computed_parts = runner.computed_parts
    return result


def merge_run(config: RunConfig, plots: bool = True, report: bool = True) -> RunReport:
    """Merge the stored parts of ``config`` (every shard's) and write the outputs."""
    config = absolute_paths(config)
    metrics, options, protocols = _selection(config)
    folder = RunFolder(config.out)
    folder.check()
    plans = plan_run(config, metrics, options, protocols)
    with folder.lock(), terminate_as_exception():
        folder.prepare()
        device = launch(config.device, (0, 1)).device
        result = _publish(folder, config, plans, protocols, plots, report, device)
        result.sets = _sets(folder, config, plans, options, protocols, device, print)
        return result


def _sets(folder: RunFolder, config: RunConfig, plans, options: dict, protocols: list[str], device: str,
          log: Callable[[str], None]) -> pd.DataFrame | None:
    """The set-level metrics (FID, KID) of the run, written beside the tables (benchmark.engine.sets)."""
    from benchmark.evaluation import parse_metrics

    names = set_metric_names(parse_metrics(config.metrics))
    if not names:
        return None
    rows = compute_sets(folder, config, plans, names, options, protocols, device, log)
    write_sets(folder, rows)
    return rows


def _publish(folder: RunFolder, config: RunConfig, plans, protocols: list[str], plots: bool, report: bool,
             device: str) -> RunReport:
    per_frame, missing = merge(folder, [plan.stored for plan in plans])
    summary = summarize(per_frame, bootstrap=config.bootstrap)
    metadata = run_metadata(config, plans, per_frame, protocols, device,
                            lambda stored: folder.pair_folder(stored.dataset, stored.sequence, stored.method))
    files = write_outputs(folder, config, per_frame, missing, protocols, plots=plots, report=report,
                          summary=summary, metadata=metadata)
    return RunReport(folder.path, per_frame, summary, missing, files=files, metadata=metadata)
