"""Set-level metrics of a run (FID, KID): features per frame, then a value per sequence and per dataset.

For each protocol and each set metric (registry kind ``set``, :mod:`metrics.setlevel`):

- every evaluated frame's features (of the method and of the ground truth, prepared by the
  protocol) are kept in the sequence's truth cache, ``<out>/cache/<dataset>/<sequence>/inception/``,
  one file per frame keyed by the frame's content and what the features depend on (protocol,
  weight file, torch version, device type) — written atomically, batch by batch. So the ground
  truth's features are computed once and shared by every method (and by FID and KID), a rerun
  computes nothing it has, and a killed run resumes from the batch in flight;
- FID without bootstrap (``resamples = 0``) accumulates running float64 statistics batch by batch
  (memory O(d²), 32 MiB per set for d = 2048, whatever the number of frames); with a bootstrap,
  and for KID (random subsets of frames), the features are held (8 KiB per frame and set);
- the value of each (dataset, sequence, method) (``scope = sequence``) and of each (dataset,
  method) over all its sequences' frames (``scope = dataset``) is computed from those features,
  with its bootstrap interval, resample count and frame counts, and the SHA-256 of the weight file.

The rows go to ``<out>/set_metrics.csv``, and as plain values to the publisher, which shows them
beside Table 1 and in ``set_metrics.md`` (:mod:`reports.sets`); a metric that cannot run (its
weights absent) gets one row per scope with the reason and no value. They are computed before the
tables are published, so the tables of one run show them.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from benchmark.align import align as align_sources
from benchmark.config import RunConfig
from benchmark.engine.parts import PairPlan
from benchmark.engine.plan import SubsetFrames
from benchmark.results.files import atomic_write_csv
from benchmark.results.folder import RunFolder
from metrics import registry
from metrics.errors import CabenchError
from metrics.fid import FeatureStatistics
from metrics.inception import FEATURE_DIM
from metrics.protocols import get_protocol
from metrics.truth import TruthStore, content_key
from metrics.weights import file_sha256

SET_COLUMNS = ("scope", "dataset", "sequence", "method", "protocol", "metric", "value", "ci_low", "ci_high",
               "resamples", "frames", "gt_frames", "weights_sha256", "details", "missing")
ALL_SEQUENCES = "*"


def set_metric_names(metrics: list[str]) -> list[str]:
    return [name for name in metrics if registry.get(name).kind == "set"]


def pair_features(plan: PairPlan, pred: Any, protocol_id: str, metric: Any, store: TruthStore, batch_size: int,
                  align: tuple[str, ...], device: str) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """The (method, ground truth) features (b, d) float32 of one pair's evaluated frames, batch by batch
    (at least the metric's ``feature_batch`` frames: the network's cost per frame falls with the batch),
    through ``store``."""
    import torch

    protocol = get_protocol(protocol_id)
    salt = f"{protocol.id}/{protocol.version}"
    pair = align_sources(SubsetFrames(pred, plan.ids), SubsetFrames(plan.pair.sequence.frames, plan.ids), align or None)
    for pred_frames, gt_frames in pair.batches(max(batch_size, metric.feature_batch)):
        truth = protocol.prepare_gt(gt_frames, None, None, torch.device(device))
        prepared = {"pred": protocol.prepare_pred(pred_frames, truth, torch.device(device)), "gt": truth.gt}
        found = {}
        for role, frames in prepared.items():
            keys = [[content_key(frame, salt)] for frame in frames]

            def compute(indices: list[int], frames=frames) -> list[dict[str, np.ndarray]]:
                return [{"features": row} for row in metric.features(frames[indices])]

            found[role] = np.stack([e["features"] for e in store.get("inception", metric.feature_key, keys, compute)])
        yield found["pred"], found["gt"]


def clip_features(plan: PairPlan, pred: Any, protocol_id: str, metric: Any, store: TruthStore, batch_size: int,
                  align: tuple[str, ...], device: str, info: dict[str, int]) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """The (method, ground truth) features (c, d) float32 of one pair's clips (``metric.clip_length``
    consecutive evaluated frames, non-overlapping, from the first), through ``store`` (kind ``i3d``,
    keyed by the clip's frames' content keys); ``info`` gets the frame and clip counts and the frames
    left after the last whole clip."""
    import torch

    protocol = get_protocol(protocol_id)
    salt = f"{protocol.id}/{protocol.version}"
    length = metric.clip_length
    group = max(1, min(4, batch_size // length))  # clips per network call
    pair = align_sources(SubsetFrames(pred, plan.ids), SubsetFrames(plan.pair.sequence.frames, plan.ids), align or None)
    pending: dict[str, list[torch.Tensor]] = {"pred": [], "gt": []}
    info.update(frames=0, clips=0, dropped_frames=0)

    def flush(final: bool) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        frames = {role: torch.cat(parts) if parts else None for role, parts in pending.items()}
        count = 0 if frames["gt"] is None else len(frames["gt"])
        whole = count // length if final or count >= group * length else 0
        if not whole:
            return
        found = {}
        for role, stacked in frames.items():
            clips = stacked[: whole * length].reshape(whole, length, *stacked.shape[1:])
            keys = [[content_key(frame, salt) for frame in clip] for clip in clips]

            def compute(indices: list[int], clips=clips) -> list[dict[str, np.ndarray]]:
                rows = [metric.features(clips[indices[i:i + group]]) for i in range(0, len(indices), group)]
                return [{"features": row} for row in np.concatenate(rows)]

            found[role] = np.stack([e["features"] for e in store.get("i3d", metric.feature_key, keys, compute)])
            pending[role] = [stacked[whole * length:]] if not final else []
        info["clips"] += whole
        yield found["pred"], found["gt"]

    for pred_frames, gt_frames in pair.batches(batch_size):
        truth = protocol.prepare_gt(gt_frames, None, None, torch.device(device))
        pending["pred"].append(protocol.prepare_pred(pred_frames, truth, torch.device(device)).cpu())
        pending["gt"].append(truth.gt.cpu())
        info["frames"] += len(truth.gt)
        yield from flush(final=False)
    yield from flush(final=True)
    info["dropped_frames"] = info["frames"] - info["clips"] * length


class _Collected:
    """A pair's (or a dataset's) features: stacked when the value needs them, else running statistics."""

    def __init__(self, streams: bool):
        self.streams = streams
        self.info: dict[str, int] = {}
        self.parts: dict[str, list[np.ndarray]] = {"pred": [], "gt": []}
        self.stats = {role: FeatureStatistics(FEATURE_DIM) for role in ("pred", "gt")} if streams else None

    def add(self, pred: np.ndarray, gt: np.ndarray) -> None:
        for role, features in (("pred", pred), ("gt", gt)):
            if self.streams:
                self.stats[role].update(features)
            else:
                self.parts[role].append(features)

    def merge(self, other: _Collected) -> None:
        for role in ("pred", "gt"):
            if self.streams:
                self.stats[role].merge(other.stats[role])
            else:
                self.parts[role].extend(other.parts[role])
        for key, count in other.info.items():
            self.info[key] = self.info.get(key, 0) + count

    def value(self, metric: Any) -> Any:
        if self.streams:
            return metric.value_from_statistics(self.stats["pred"], self.stats["gt"])
        if getattr(metric, "clip_length", None):  # FVD: clips; a set of fewer than 2 clips is a reason, not an error
            parts = {role: np.concatenate(self.parts[role]) if self.parts[role] else
                     np.zeros((0, metric.feature_dim), np.float32) for role in ("pred", "gt")}
            try:
                value = metric.value(parts["pred"], parts["gt"])
            except CabenchError as error:
                return f"{error} ({self.info.get('frames', 0)} evaluated frames, {self.info.get('clips', 0)} clips)"
            value.details.update(self.info, clips_from=f"consecutive non-overlapping {metric.clip_length}-frame clips "
                                 "of each sequence's evaluated frames (stride " f"{metric.clip_length})")
            return value
        return metric.value(np.concatenate(self.parts["pred"]), np.concatenate(self.parts["gt"]))


def compute_sets(folder: RunFolder, config: RunConfig, plans: list[PairPlan], names: list[str],
                 options: dict[str, dict[str, Any]], protocols: list[str], device: str,
                 log: Callable[[str], None] = print, stores: dict[Path, TruthStore] | None = None) -> pd.DataFrame:
    """The set rows of the run (see the module docstring); ``stores`` (optional) collects the truth
    stores used, by folder, so a caller can read their counts."""
    rows: list[dict[str, Any]] = []
    stores = {} if stores is None else stores
    for protocol_id in protocols:
        for name in names:
            reason = registry.get(name).protocol_check(protocol_id, options[name])
            if reason is None:
                metric = registry.create(name, device=device, protocol=get_protocol(protocol_id), **options[name])
                weights = file_sha256(metric.weight_path)
            per_method: dict[tuple[str, str], list[tuple[np.ndarray, np.ndarray]]] = {}
            for plan in plans:
                where = {"dataset": plan.stored.dataset, "method": plan.stored.method, "protocol": protocol_id,
                         "metric": name}
                if reason is not None:
                    rows.append({"scope": "sequence", **where, "sequence": plan.stored.sequence, "missing": reason})
                    continue
                cache = folder.truth_cache(plan.stored.dataset, plan.stored.sequence)
                store = stores.setdefault(cache, TruthStore(cache))
                collected = _Collected(metric.streams)
                if getattr(metric, "clip_length", None):
                    features = clip_features(plan, plan.method.output().frames, protocol_id, metric, store,
                                             config.batch_size, config.align, device, collected.info)
                else:
                    features = pair_features(plan, plan.method.output().frames, protocol_id, metric, store,
                                             config.batch_size, config.align, device)
                for pred, gt in features:
                    collected.add(pred, gt)
                per_method.setdefault((plan.stored.dataset, plan.stored.method), []).append(collected)
                rows.append(_row("sequence", {**where, "sequence": plan.stored.sequence}, collected.value(metric), weights))
            if reason is not None:
                for dataset, method in dict.fromkeys((p.stored.dataset, p.stored.method) for p in plans):
                    rows.append({"scope": "dataset", "dataset": dataset, "sequence": ALL_SEQUENCES, "method": method,
                                 "protocol": protocol_id, "metric": name, "missing": reason})
                log(f"{name}: missing ({reason})")
                continue
            for (dataset, method), sets in per_method.items():
                if len(sets) == 1:  # one sequence: the dataset's value is the sequence's
                    single = next(r for r in reversed(rows) if r["dataset"] == dataset and r["method"] == method
                                  and r["metric"] == name and r["protocol"] == protocol_id)
                    rows.append({**single, "scope": "dataset", "sequence": ALL_SEQUENCES})
                    continue
                total = _Collected(metric.streams)
                for collected in sets:
                    total.merge(collected)
                where = {"dataset": dataset, "sequence": ALL_SEQUENCES, "method": method, "protocol": protocol_id,
                         "metric": name}
                rows.append(_row("dataset", where, total.value(metric), weights))
    return pd.DataFrame(rows, columns=list(SET_COLUMNS))


def _row(scope: str, where: dict[str, Any], value: Any, weights: str) -> dict[str, Any]:
    if isinstance(value, str):  # a reason (FVD: too few clips)
        return {"scope": scope, **where, "missing": value}
    return {"scope": scope, **where, "value": value.value, "ci_low": value.low, "ci_high": value.high,
            "resamples": value.resamples, "frames": value.frames, "gt_frames": value.gt_frames,
            "weights_sha256": weights, "details": json.dumps(value.details, sort_keys=True), "missing": ""}


def write_sets(folder: RunFolder, rows: pd.DataFrame) -> list[Path]:
    """``set_metrics.csv`` in the run folder (nothing when there are no rows); the tables that show the
    values are the publisher's (:mod:`reports.sets`)."""
    if rows.empty:
        return []
    return [atomic_write_csv(rows, folder.path / "set_metrics.csv")]
