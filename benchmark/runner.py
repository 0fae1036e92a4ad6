"""`cabench run`: datasets x methods x metrics from a TOML config, resumable and shardable.

Storage convention (what makes a run resumable): every (dataset, sequence, method, metric) has
its own part under ``<out>/parts/<dataset>/<sequence>/<method>/``: ``<metric>.csv`` (frame + the
metric's columns) and ``<metric>.json`` (the fingerprint of everything the numbers depend on,
whether the part is complete, or why the metric is missing). Parts are rewritten atomically after
every batch, so a killed run loses at most the batch in flight. A rerun:
- reuses a complete part whose fingerprint matches (nothing is recomputed, and it says how much
  it reused); ``force=True`` recomputes everything;
- continues a partial part of a per-frame metric from the first frame it lacks; a temporal metric
  (kind ``temporal``: it streams over frame pairs from the start) is recomputed from the start,
  since its values depend on the frames before;
- checks missing metrics again (their weights may have arrived since).
The (sequence, method) pairs are independent, so when launched as n processes
(``accelerate launch --multi_gpu`` on GPUs, ``torchrun`` for CPU processes) accelerate's process
state splits them (process i takes pairs i, i+n, ...), each writes its own parts, the processes
wait for each other, and the main process merges all parts into ``per_frame.csv``, ``summary.csv``, ``missing.csv``, the tables, plots and
``report.html``. Runtime (``time_s``) is the rendering time per frame that an adapter measured
(``MethodOutput.seconds_per_frame``, after ``adapter.load()``); stored outputs have no runtime.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from benchmark.config import DatasetConfig, MethodConfig, RunConfig, to_toml
from benchmark.files import atomic_write_bytes, atomic_write_csv, atomic_write_text
from benchmark.io import Frames, FrameSource
from metrics import registry
from metrics.errors import CabenchError, InputError

KEY_COLUMNS = ("dataset", "sequence", "method", "frame", "protocol")
TIME_COLUMN = "time_s"


class SubsetFrames(FrameSource):
    """The frames of ``source`` whose ids are in ``ids`` (in the source's order)."""

    def __init__(self, source: FrameSource, ids: Sequence[int]):
        keep = set(int(i) for i in ids)
        self.source = source
        self.name = source.name
        self.frame_ids = [i for i in source.frame_ids if i in keep]
        self.size = source.size
        self.fps = source.fps

    def read(self, ids: Sequence[int]) -> Frames:
        self._check_ids(ids)
        return self.source.read(ids)


@dataclass
class Pair:
    """One (sequence, method) of a run: the unit of work, of sharding and of the part folders."""

    dataset: DatasetConfig
    sequence: Any  # benchmark.datasets.Sequence (name, frames, mask, annotations, splits, root)
    method: MethodConfig

    @property
    def label(self) -> str:
        return f"{self.dataset.name}/{self.sequence.name}/{self.method.name}"


@dataclass
class RunReport:
    out: Path
    per_frame: pd.DataFrame
    summary: pd.DataFrame
    missing: pd.DataFrame
    computed_frames: int = 0
    reused_frames: int = 0
    files: list[Path] = field(default_factory=list)


def slug(name: str) -> str:
    """A file-name-safe, still readable form of a dataset, sequence or method name."""
    text = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_") or "_"
    return text if text == name else f"{text}-{hashlib.sha1(name.encode()).hexdigest()[:6]}"


def open_datasets(config: RunConfig) -> list[tuple[DatasetConfig, list[Any]]]:
    from benchmark.datasets import open_dataset

    opened = []
    for dataset in config.datasets:
        found = open_dataset(dataset.path, kind=dataset.kind)
        sequences = list(found)
        if dataset.sequences:
            sequences = [found.sequence(name) for name in dataset.sequences]
        if not sequences:
            raise InputError(f"{dataset.path}: dataset {dataset.name!r} has no sequences")
        opened.append((dataset, sequences))
    return opened


def plan(config: RunConfig) -> list[Pair]:
    """Every (dataset, sequence, method) of the config, in config order."""
    return [Pair(dataset, sequence, method) for dataset, sequences in open_datasets(config)
            for sequence in sequences for method in config.methods]


def evaluated_ids(sequence: Any, split: str) -> list[int]:
    """Frame ids of ``split``; a sequence without splits is evaluated on all its frames."""
    splits = getattr(sequence, "splits", None) or {}
    if split in ("all", "") or not splits:
        return list(sequence.frames.frame_ids)
    if split not in splits:
        raise InputError(f"{sequence.name}: no split {split!r} (has {', '.join(splits)})")
    return list(splits[split])


def method_frames(pair: Pair, split: str = "test") -> tuple[FrameSource, float | None, dict[str, Any]]:
    """The method's frames for the pair's sequence, its seconds per frame when it rendered them, and
    what the adapter did to line the frames up (``MethodOutput.alignment``).

    Adapters (``baselines.create_adapter(adapter, **settings).outputs(sequence)``) get the run's
    split and the method's name unless the settings give them; a frame folder gets nothing.
    """
    from benchmark.io import open_frames

    method, sequence = pair.method, pair.sequence
    if method.frames is not None:
        fields = {"root": str(getattr(sequence, "root", "") or ""), "sequence": sequence.name, "dataset": pair.dataset.name}
        try:
            path = method.frames.format(**fields)
        except KeyError as error:
            raise CabenchError(f"method {method.name!r}: unknown placeholder {error} in frames (known: root, sequence, dataset)") from None
        return open_frames(path, name=method.name), None, {"frames": path}
    import baselines

    settings = dict(method.settings)
    settings.setdefault("split", split)
    settings.setdefault("name", method.name)
    adapter = baselines.create_adapter(method.adapter, **settings)
    adapter.load()
    output = adapter.outputs(sequence)
    return output.frames, output.seconds_per_frame, dict(output.alignment)


def _fingerprint(config: RunConfig, pair: Pair, metric: str, options: dict[str, Any], ids: list[int]) -> str:
    identity = {"dataset": pair.dataset.path, "kind": pair.dataset.kind, "sequence": pair.sequence.name,
                "method": pair.method.identity(), "metric": metric, "options": options, "protocol": config.protocol,
                "split": config.split, "align": sorted(config.align), "mask": config.mask, "frames": ids}
    return hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()[:20]


class Part:
    """The stored values of one metric for one pair (see the module docstring)."""

    def __init__(self, folder: Path, metric: str, fingerprint: str):
        self.csv = folder / f"{metric}.csv"
        self.json = folder / f"{metric}.json"
        self.metric = metric
        self.fingerprint = fingerprint
        self.state: dict[str, Any] = {}
        self.rows = pd.DataFrame()
        if self.json.exists():
            try:
                self.state = json.loads(self.json.read_text())
            except (OSError, json.JSONDecodeError):
                self.state = {}
        if self.state.get("fingerprint") == fingerprint and self.csv.exists():
            try:
                self.rows = pd.read_csv(self.csv)
            except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError):
                self.state, self.rows = {}, pd.DataFrame()
        else:
            self.state = {}

    @property
    def complete(self) -> bool:
        return bool(self.state.get("complete")) and not self.state.get("missing")

    def done_frames(self) -> set[int]:
        return set() if self.rows.empty else set(int(f) for f in self.rows["frame"])

    def reset(self) -> None:
        self.state, self.rows = {}, pd.DataFrame()

    def add(self, chunk: pd.DataFrame, protocol: str) -> None:
        self.rows = pd.concat([self.rows, chunk], ignore_index=True) if len(self.rows) else chunk.reset_index(drop=True)
        self.save(complete=False, protocol=protocol)

    def save(self, complete: bool, protocol: str, missing: str | None = None) -> None:
        self.state = {"fingerprint": self.fingerprint, "metric": self.metric, "complete": complete,
                      "protocol": protocol, "missing": missing, "frames": len(self.rows)}
        if not missing:
            atomic_write_csv(self.rows.sort_values("frame"), self.csv)
        atomic_write_text(self.json, json.dumps(self.state, indent=1))


class Runner:
    """Runs the pairs of a config; see the module docstring for storage, resume and sharding."""

    def __init__(self, config: RunConfig, force: bool = False, progress: bool = True, log: Callable[[str], None] = print):
        from benchmark.evaluation import parse_metrics, split_options

        self.config = config
        self.out = Path(config.out)
        self.force = force
        self.progress = progress
        self.log = log
        self.metrics = parse_metrics(config.metrics)
        self.options = split_options(self.metrics, config.options)
        self.computed = 0
        self.reused = 0

    def unavailable(self, name: str) -> str | None:
        """Why metric ``name`` cannot run under this config (protocol, weights, packages), or None."""
        from metrics.protocols import get_protocol

        return get_protocol(self.config.protocol).unsupported.get(name) or registry.get(name).unavailable_reason(self.options[name])

    def folder(self, pair: Pair) -> Path:
        return self.out / "parts" / slug(pair.dataset.name) / slug(pair.sequence.name) / slug(pair.method.name)

    def run_pair(self, pair: Pair, device: str) -> None:
        """Compute what is not stored yet for one pair (every metric and the method's runtime)."""
        ids = evaluated_ids(pair.sequence, self.config.split)
        folder = self.folder(pair)
        parts = {m: Part(folder, m, _fingerprint(self.config, pair, m, self.options[m], ids)) for m in self.metrics}
        if self.force:
            for part in parts.values():
                part.reset()
        todo_full, todo_rest = [], []
        for name, part in parts.items():
            reason = self.unavailable(name)
            if reason:
                part.reset()
                part.save(complete=False, protocol=self.config.protocol, missing=reason)
            elif part.complete:
                self.reused += len(part.rows)
            elif registry.get(name).kind == "temporal" or not len(part.rows):
                part.reset()
                todo_full.append(name)
            else:
                todo_rest.append(name)
        if not todo_full and not todo_rest:
            return
        pred, seconds, record = method_frames(pair, self.config.split)
        atomic_write_text(folder / "method.json", json.dumps(record, indent=1, default=str))
        write_samples(pred, pair.sequence.frames, ids, folder)
        if seconds is not None:
            timing = pd.DataFrame({"frame": ids, TIME_COLUMN: float(seconds)})
            atomic_write_csv(timing, folder / f"{TIME_COLUMN}.csv")
        if todo_rest:
            done = set.intersection(*(parts[m].done_frames() for m in todo_rest))
            remaining = [i for i in ids if i not in done]
            for name in todo_rest:
                part = parts[name]
                part.rows = part.rows[part.rows["frame"].isin(done)]
                self.reused += len(part.rows)
            self._evaluate(pair, pred, remaining, todo_rest, parts, device)
        if todo_full:
            self._evaluate(pair, pred, ids, todo_full, parts, device)

    def _evaluate(self, pair: Pair, pred: FrameSource, ids: list[int], names: list[str], parts: dict[str, Part],
                  device: str) -> None:
        from benchmark.evaluation import evaluate

        sequence = pair.sequence
        protocol = self.config.protocol
        columns = {name: registry.get(name).output_columns() for name in names}

        def store(chunk: pd.DataFrame) -> None:
            for name in names:
                present = [c for c in columns[name] if c in chunk]
                if present:
                    parts[name].add(chunk[["frame", *present]], chunk["protocol"].iloc[0])
            self.computed += len(chunk) * len(names)

        options = {key: value for name in names for key, value in self.options[name].items()}
        if ids:
            gt = SubsetFrames(sequence.frames, ids)
            use_mask = self.config.mask and getattr(sequence, "mask", None) is not None
            mask = SubsetFrames(sequence.mask, ids) if use_mask else None
            annotations = _annotations(sequence, gt.frame_ids)
            truth_cache = self.out / "cache" / slug(pair.dataset.name) / slug(sequence.name)
            result = evaluate(SubsetFrames(pred, ids), gt, metrics=names, protocol=protocol, mask=mask, device=device,
                              batch_size=self.config.batch_size, align=self.config.align or None,
                              progress=self.progress, annotations=annotations, on_rows=store,
                              truth_cache=truth_cache, **options)
            missing, protocol = result.missing, result.protocol
        else:
            missing = {}
        for name in names:
            parts[name].save(complete=name not in missing, protocol=protocol, missing=missing.get(name))

    def run(self, pairs: Sequence[Pair], shard: tuple[int, int] = (0, 1), device: str | None = None) -> None:
        index, count = shard
        mine = list(pairs)[index::count]
        device = device or self.config.device
        for n, pair in enumerate(mine, 1):
            self.log(f"[{n}/{len(mine)}] {pair.label}")
            self.run_pair(pair, device)


SAMPLE_FRAMES, SAMPLE_HEIGHT = 4, 112


def sample_ids(ids: Sequence[int], count: int = SAMPLE_FRAMES) -> list[int]:
    """``count`` frame ids spread evenly over ``ids`` (first and last included)."""
    if len(ids) <= count:
        return list(ids)
    return [ids[round(i * (len(ids) - 1) / (count - 1))] for i in range(count)]


def strip(frames: Frames, height: int = SAMPLE_HEIGHT) -> np.ndarray:
    """The frames side by side, each resized to ``height`` rows (uint8 RGB)."""
    import cv2

    tiles = [cv2.resize(f, (max(1, round(f.shape[1] * height / f.shape[0])), height), interpolation=cv2.INTER_AREA)
             for f in frames.rgb]
    return np.concatenate(tiles, axis=1)


def write_samples(pred: FrameSource, gt: FrameSource, ids: Sequence[int], folder: Path) -> None:
    """Sample strips for the report: ``samples.png`` (the method) and, beside the method folders, ``gt_samples.png``."""
    import cv2

    chosen = [i for i in sample_ids(ids) if i in set(pred.frame_ids)]
    if not chosen:
        return
    for source, path in ((pred, folder / "samples.png"), (gt, folder.parent / "gt_samples.png")):
        ok, data = cv2.imencode(".png", cv2.cvtColor(strip(source.read(chosen)), cv2.COLOR_RGB2BGR))
        if ok:
            atomic_write_bytes(path, data.tobytes())


def _annotations(sequence: Any, ids: list[int]) -> dict[str, np.ndarray] | None:
    annotations = getattr(sequence, "annotations", None) or {}
    if "landmarks" not in annotations:
        return None
    index = {frame: i for i, frame in enumerate(sequence.frames.frame_ids)}
    return {"landmarks": np.asarray(annotations["landmarks"])[[index[i] for i in ids]]}


def merge(config: RunConfig, pairs: Sequence[Pair], metrics: Sequence[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Read every part of the run into the result table (per-frame rows) and the missing records."""
    out = Path(config.out)
    tables, missing = [], []
    for pair in pairs:
        folder = out / "parts" / slug(pair.dataset.name) / slug(pair.sequence.name) / slug(pair.method.name)
        merged: pd.DataFrame | None = None
        protocol = config.protocol
        for name in [*metrics, TIME_COLUMN]:
            state_path, csv_path = folder / f"{name}.json", folder / f"{name}.csv"
            if name != TIME_COLUMN:
                state = json.loads(state_path.read_text()) if state_path.exists() else {}
                if state.get("missing"):
                    missing.append({"dataset": pair.dataset.name, "sequence": pair.sequence.name,
                                    "method": pair.method.name, "metric": name, "reason": state["missing"]})
                    continue
                if not state.get("complete"):
                    raise CabenchError(f"{folder}: {name} is not complete; run the config again to finish it")
                protocol = state.get("protocol", protocol)
            if not csv_path.exists():
                continue
            rows = pd.read_csv(csv_path)
            merged = rows if merged is None else merged.merge(rows, on="frame", how="outer")
        if merged is None:
            continue
        merged = merged.sort_values("frame")
        head = pd.DataFrame({"dataset": pair.dataset.name, "sequence": pair.sequence.name, "method": pair.method.name,
                             "frame": merged["frame"].astype(int).to_numpy(), "protocol": protocol})
        tables.append(pd.concat([head, merged.drop(columns="frame").reset_index(drop=True)], axis=1))
    per_frame = pd.concat(tables, ignore_index=True) if tables else pd.DataFrame(columns=list(KEY_COLUMNS))
    value_columns = [c for c in per_frame.columns if c not in KEY_COLUMNS]
    ordered = [c for name in metrics for c in _metric_columns(name) if c in value_columns]
    ordered += [c for c in value_columns if c not in ordered]
    missing_frame = pd.DataFrame(missing, columns=["dataset", "sequence", "method", "metric", "reason"])
    return per_frame[[*KEY_COLUMNS, *ordered]], missing_frame


def _metric_columns(name: str) -> tuple[str, ...]:
    return registry.get(name).output_columns()


def summarize_run(per_frame: pd.DataFrame) -> pd.DataFrame:
    """Mean, std and count per (dataset, method, metric column); NaN skipped and counted."""
    from benchmark.evaluation import summarize

    summary = summarize(per_frame, by=("dataset", "method"))
    if summary.empty:  # every metric was missing: keep the columns so tables can say so
        return pd.DataFrame(columns=["dataset", "method", "metric", "protocol", "mean", "std", "count", "frames"])
    return summary


def missing_by_method(missing: pd.DataFrame) -> pd.DataFrame:
    """One missing record per (dataset, method, metric): the reasons of its sequences joined."""
    if missing.empty:
        return missing.drop(columns="sequence", errors="ignore")
    grouped = missing.groupby(["dataset", "method", "metric"], sort=False)["reason"]
    return grouped.agg(lambda reasons: "; ".join(dict.fromkeys(reasons))).reset_index()


def write_outputs(out: Path, config: RunConfig, per_frame: pd.DataFrame, missing: pd.DataFrame,
                  plots: bool = True, report: bool = True) -> list[Path]:
    """Write the result table, its summary, the tables, plots and report into ``out``."""
    from reports import tables

    summary = summarize_run(per_frame)
    files = [atomic_write_csv(per_frame, out / "per_frame.csv"), atomic_write_csv(summary, out / "summary.csv"),
             atomic_write_csv(missing, out / "missing.csv"), atomic_write_text(out / "config.toml", to_toml(config))]
    for name, text in tables.render_all(summary, missing_by_method(missing)).items():
        files.append(atomic_write_text(out / name, text))
    if plots and len(per_frame):
        from reports.plots import run_plots

        files += run_plots(per_frame, summary, out / "plots")
    if report:
        from reports.html import write_report

        files.append(write_report(out, config_text=to_toml(config)))
    return files


def _accelerate_state(device: str):
    """accelerate's process state when launched as several processes (``accelerate launch``,
    ``torchrun``: WORLD_SIZE > 1), else None. CPU runs (``device = "cpu"`` or no CUDA) use gloo."""
    import os

    import torch

    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return None
    from accelerate import PartialState

    return PartialState(cpu=device == "cpu" or not torch.cuda.is_available())


def run_config(config: RunConfig, force: bool = False, progress: bool = True, shard: tuple[int, int] | None = None,
               plots: bool = True, report: bool = True, log: Callable[[str], None] = print) -> RunReport | None:
    """Run ``config``: compute what is missing, then (on the main process) merge and write the outputs.

    shard: (index, count) to run only pairs index, index+count, ... and not merge; None takes the
    shard from ``accelerate launch`` when it started this process, else runs everything.
    """
    runner = Runner(config, force=force, progress=progress, log=log)
    pairs = plan(config)
    state = _accelerate_state(config.device) if shard is None else None
    device = config.device
    if state is not None:
        shard = (state.process_index, state.num_processes)
        if device == "auto":
            device = str(state.device)
    elif device == "auto":
        import torch

        device = "cuda" if torch.cuda.is_available() else "cpu"
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    runner.run(pairs, shard or (0, 1), device=device)
    if state is not None:
        state.wait_for_everyone()
        if not state.is_main_process:
            return None
    elif shard is not None and shard[1] > 1:
        return None
    total = runner.computed + runner.reused
    if total:
        share = 100.0 * runner.reused / total
        log(f"reused {runner.reused} stored (frame, metric) results and computed {runner.computed} ({share:.0f}% reused)")
    report_ = merge_run(config, pairs, plots=plots, report=report)
    report_.computed_frames, report_.reused_frames = runner.computed, runner.reused
    return report_


def merge_run(config: RunConfig, pairs: Sequence[Pair] | None = None, plots: bool = True, report: bool = True) -> RunReport:
    """Merge the stored parts of ``config`` (every shard's) and write the outputs."""
    from benchmark.evaluation import parse_metrics

    pairs = plan(config) if pairs is None else pairs
    per_frame, missing = merge(config, pairs, parse_metrics(config.metrics))
    out = Path(config.out)
    files = write_outputs(out, config, per_frame, missing, plots=plots, report=report)
    return RunReport(out, per_frame, summarize_run(per_frame), missing, files=files)
