"""`benchmark.evaluate`: per-frame metrics of one prediction against its ground truth.

The result is an :class:`Evaluation`: the per-frame table (one row per frame: ``frame``,
``protocol``, then one column per metric column), the metrics that could not run (missing weights
or packages, or not defined by the protocol) with their reasons, so a caller reports them as
missing instead of as numbers, the protocol and the alignment policy used.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Executor, ThreadPoolExecutor
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np
import pandas as pd
import torch

from benchmark.align import align as align_sources
from benchmark.io import BATCH_SIZE, Frames, FrameSource, open_frames, open_masks
from metrics import registry
from metrics.audio import Audio
from metrics.device import resolve_device
from metrics.errors import CabenchError, CabenchWarning, InputError
from metrics.protocols import get_protocol
from metrics.truth import TruthStore

T = TypeVar("T")


@dataclass
class Evaluation:
    """What :func:`evaluate` found.

    frames: per-frame table, columns ``frame``, ``protocol`` and one per metric column.
    missing: {metric: why it could not run}; those metrics have no column.
    protocol: the protocol id every number was computed with.
    align: the alignment policies applied (``intersect``, ``resize``), empty when none was needed.
    """

    frames: pd.DataFrame
    missing: dict[str, str] = field(default_factory=dict)
    protocol: str = "canonical"
    align: list[str] = field(default_factory=list)


def parse_metrics(metrics: str | Iterable[str]) -> list[str]:
    """``"l2,psnr"`` or an iterable of names -> validated list (unknown names are an error)."""
    names = [m.strip() for m in metrics.split(",")] if isinstance(metrics, str) else [str(m) for m in metrics]
    names = [n for n in names if n]
    if not names:
        raise CabenchError("--metrics: no metric given")
    for name in names:
        if registry.get(name).kind == "runtime":
            raise CabenchError(f"--metrics: {name} is measured while a method renders, not a metric to compute")
    return list(dict.fromkeys(names))


def split_options(names: Sequence[str], options: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Each selected metric's options, split once.

    A table under a metric's name (``[run.options.lpips]``, or ``lpips={"net": "vgg"}``) is that
    metric's alone; a plain key (the ``[run.options]`` shorthand, or ``net="vgg"``) goes to every selected
    metric whose defaults name it; a metric's own table wins over the shorthand. An option that no
    selected metric takes, a table of a metric not selected, or a key the metric does not take is an error.
    """
    known = set(registry.list_metrics())
    tables = {key: value for key, value in options.items() if key in known}
    shorthand = {key: value for key, value in options.items() if key not in known}
    per_metric: dict[str, dict[str, Any]] = {name: {} for name in names}
    used = set()
    for name in names:
        for key, value in shorthand.items():
            if key in registry.get(name).defaults:
                per_metric[name][key] = value
                used.add(key)
    unknown = sorted(set(shorthand) - used)
    if unknown:
        raise CabenchError(f"option {', '.join(unknown)} is not used by any of the metrics {', '.join(names)}")
    for metric, table in tables.items():
        if not isinstance(table, dict):
            raise CabenchError(f"options of {metric}: expected a table of its options ([run.options.{metric}]), "
                               f"got {table!r}")
        if metric not in per_metric:
            raise CabenchError(f"options of {metric}: {metric} is not one of the metrics {', '.join(names)}")
        takes = registry.get(metric).defaults
        wrong = sorted(set(table) - set(takes))
        if wrong:
            raise CabenchError(f"options of {metric}: {', '.join(wrong)} is not an option of {metric} "
                               f"(its options: {', '.join(sorted(takes)) or 'none'})")
        per_metric[metric].update(table)
    return per_metric


def _check_frames(array: np.ndarray, name: str, ids: Sequence[int]) -> None:
    if array.dtype != np.uint8:
        raise InputError(f"{name}: frames {ids[0]}..{ids[-1]} are not uint8")


def evaluate(
    *,
    pred: str | np.ndarray | FrameSource,
    gt: str | np.ndarray | FrameSource,
    metrics: str | Iterable[str] = ("l2", "psnr", "ssim"),
    protocol: str = "canonical",
    mask: str | np.ndarray | FrameSource | None = None,
    device: str = "cpu",
    batch_size: int = BATCH_SIZE,
    align: str | Iterable[str] | None = None,
    progress: bool = True,
    annotations: dict[str, np.ndarray] | None = None,
    on_rows: Callable[[pd.DataFrame], None] | None = None,
    truth_cache: str | os.PathLike | TruthStore | None = None,
    audio: Audio | None = None,
    keep_rows: bool = True,
    **options: Any,
) -> Evaluation:
    """Evaluate ``pred`` against ``gt`` frame by frame.

    Every argument is passed by name (``evaluate(pred=..., gt=...)``): temporal and face metrics
    are not symmetric (the flow, occlusion and face region come from the ground truth), so a call
    with the two swapped gives other numbers without looking wrong; naming them makes it visible.

    Args:
        pred, gt: a folder of frames, a video file, a uint8 array (T,H,W,3|4) or a FrameSource.
        metrics: metric names (see ``cabench eval --help`` or ``metrics.list_metrics()``).
        protocol: ``canonical`` or a compatibility protocol (``metrics.PROTOCOLS``).
        mask: optional mask folder or array (T,H,W) aligned with the ground truth's frames.
        align: ``None`` (mismatches are errors), ``"intersect"``, ``"resize"`` or both.
        annotations: per-frame ground-truth arrays in the ground truth's frame order, e.g.
            ``{"landmarks": (T,68,2)}`` in pixels (the imavatar protocol's face hull).
        on_rows: called with each batch's rows as soon as they are computed.
        keep_rows: whether the result's ``frames`` holds the rows; ``False`` (with ``on_rows``, which
            then gets them) keeps nothing per frame, so memory does not grow with the video.
        truth_cache: a folder where what the metrics compute from the ground truth alone (flows,
            occlusion masks, face boxes and landmarks, descriptors, DECA codes, LPIPS distances) is
            kept across calls and runs, so that every method evaluated against the same ground
            truth reuses it (see :mod:`metrics.truth`); or a :class:`~metrics.truth.TruthStore`
            (e.g. ``TruthStore(folder, exclude={"flow"})`` to keep dense flows out of it). None:
            computed in this call only.
        audio: the ground truth's audio aligned to its first evaluated frame (lip-sync metrics;
            those metrics are missing without it). Metrics whose values need the whole sequence
            (an evaluator with ``finish(audio, shared, truth)``) give them after the last batch, as one
            more chunk of rows for every frame.
        options: metric options (e.g. ``net="vgg"`` for LPIPS), given to the metrics that take them,
            or per metric as a table under its name (``lpips={"net": "vgg"}, tlp={"net": "alex"}``);
            see :func:`split_options`.

    Per-frame work that releases the GIL (OpenCV flows, dlib) runs on ``torch.get_num_threads()``
    threads, and the next batch is read while the current one is evaluated.
    """
    protocol_obj = get_protocol(protocol)
    names = parse_metrics(metrics)
    per_metric_options = split_options(names, options)
    torch_device = resolve_device(device)
    if batch_size < 1:
        raise CabenchError(f"--batch-size must be at least 1, got {batch_size}")

    missing: dict[str, str] = {}
    runnable = []
    for name in names:
        reason = protocol_obj.unsupported.get(name) or registry.get(name).unavailable_reason(per_metric_options[name])
        if not reason and "audio" in registry.get(name).needs and audio is None:
            reason = "the ground truth has no audio (a video's audio stream, a .wav beside the frames, or audio = in the config)"
        if reason:
            missing[name] = reason
        else:
            runnable.append(name)

    pred_source, gt_source = open_frames(pred, name="pred"), open_frames(gt, name="gt")
    pair = align_sources(pred_source, gt_source, align)
    mask_source = None
    if mask is not None:
        mask_source = open_masks(mask)
        absent = sorted(set(pair.frame_ids) - set(mask_source.frame_ids))
        if absent:
            raise InputError(f"{mask_source.name}: no mask for frames {', '.join(map(str, absent[:8]))}")
        if mask_source.size != gt_source.size:
            raise InputError(
                f"{mask_source.name}: mask size {mask_source.size[1]}x{mask_source.size[0]} differs from "
                f"the ground truth's {gt_source.size[1]}x{gt_source.size[0]}"
            )
    landmark_rows = _annotation_index(annotations, gt_source, "landmarks")
    for name in runnable:  # what the protocol needs of the input is known before any frame is read
        problem = protocol_obj.input_problem(name, gt_source.size, landmark_rows is not None, mask_source is not None)
        if problem:
            raise InputError(problem)

    evaluators = {
        name: registry.create(name, device=torch_device, protocol=protocol_obj, **per_metric_options[name])
        for name in runnable
    }
    truth = truth_cache if isinstance(truth_cache, TruthStore) else TruthStore(truth_cache)
    salt = f"{protocol_obj.id}/{protocol_obj.version}"
    columns = [c for name in runnable for c in evaluators[name].columns or (name,)]
    chunks = []
    bar = _progress(len(pair.frame_ids), progress, f"{pred_source.name} vs {gt_source.name}")
    workers = torch.get_num_threads()
    with ThreadPoolExecutor(1) as reader, (ThreadPoolExecutor(workers) if workers > 1 else nullcontext()) as pool:
        try:
            for index, (pred_frames, gt_frames) in enumerate(read_ahead(pair.batches(batch_size), reader)):
                ids = gt_frames.ids
                _check_frames(pred_frames.rgb, pred_source.name, ids)
                if index == 0:
                    _warn_video_without_alpha(pred_source, gt_frames, gt_source.name)
                mask_array = mask_source.read(ids).alpha if mask_source is not None else None
                landmarks = None if landmark_rows is None else landmark_rows[_positions(gt_source, ids)]
                prepared_gt = protocol_obj.prepare_gt(gt_frames, mask_array, landmarks, torch_device)
                if prepared_gt.mask is not None:
                    _check_masks(mask_array, prepared_gt.mask, ids, mask_source, protocol_obj.id)
                prepared_pred = protocol_obj.prepare_pred(pred_frames, prepared_gt, torch_device)
                batch = registry.Batch(ids, prepared_pred, prepared_gt.gt, prepared_gt.mask,
                                       {} if landmarks is None else {"landmarks": landmarks},
                                       truth=truth, truth_salt=salt, executor=pool)
                rows: dict[str, Any] = {"frame": ids, "protocol": protocol_obj.id}
                for evaluator in evaluators.values():
                    for column, values in evaluator.update(batch).items():
                        rows[column] = np.asarray(values, dtype=np.float64)
                chunk = pd.DataFrame(rows)
                if keep_rows:
                    chunks.append(chunk)
                if on_rows is not None:
                    on_rows(chunk)
                bar.update(len(ids))
        finally:
            bar.close()
    frame = pd.concat(chunks, ignore_index=True) if chunks else pd.DataFrame(columns=["frame", "protocol", *columns])
    finished = _finish_sequence(evaluators, pair.frame_ids, audio, protocol_obj.id, truth)
    if finished is not None:
        if on_rows is not None and len(finished):
            on_rows(finished)
        if keep_rows:
            for column in finished.columns.drop(["frame", "protocol"]):
                frame[column] = finished[column].to_numpy()
    return Evaluation(frame, missing, protocol_obj.id, sorted(pair.policy))


def _finish_sequence(evaluators: dict[str, registry.Evaluator], frame_ids: list[int], audio: Audio | None,
                     protocol: str, truth: TruthStore) -> pd.DataFrame | None:
    """The values of the sequence-level evaluators (those with ``finish``) for every evaluated frame, as
    one chunk of rows (None when no evaluator has ``finish``). ``shared`` lets the evaluators of one
    call share their work (lse_d, lse_c and av_offset score once); ``truth`` carries the ground
    truth's side (its audio features) across the methods of a sequence."""
    finishing = [e for e in evaluators.values() if hasattr(e, "finish")]
    if not finishing:
        return None
    shared: dict = {}
    values = {column: v for evaluator in finishing for column, v in evaluator.finish(audio, shared, truth).items()}
    return pd.DataFrame({"frame": np.asarray(frame_ids), "protocol": protocol,
                         **{column: np.asarray(v, dtype=np.float64) for column, v in values.items()}})


def _warn_video_without_alpha(source: FrameSource, gt: Frames, gt_name: str) -> None:
    """A video has no alpha: against a ground truth with a matte its background is compared as
    rendered with the ground truth's composited background, which is rarely what was meant."""
    if source.is_video and gt.alpha is not None:
        warnings.warn(f"{source.name}: a video has no alpha, but the ground truth {gt_name} has a matte; its "
                      "background is compared as rendered against the ground truth composited on its background "
                      "colour (render on that colour, or give RGBA frames)", CabenchWarning, stacklevel=3)


def read_ahead(batches: Iterator[T], reader: Executor) -> Iterator[T]:
    """The items of ``batches``, the next one read on ``reader`` while the caller works on the current."""
    pending = reader.submit(next, batches, None)
    while True:
        item = pending.result()
        if item is None:
            return
        pending = reader.submit(next, batches, None)
        yield item


def _check_masks(raw: np.ndarray | None, prepared: torch.Tensor, ids: Sequence[int], source: FrameSource | None,
                 protocol: str) -> None:
    """An empty mask (no pixel above 0) names its file and frame: as read, or as the protocol made it
    (resized, or the face hull from landmarks)."""
    if raw is not None:
        empty = [frame for frame, mask in zip(ids, raw) if not np.any(mask > 0)]
        if empty:
            more = f" (and {len(empty) - 1} more frames of this batch)" if len(empty) > 1 else ""
            raise InputError(f"{source.where(empty[0])}: the mask is empty (no pixel above 0){more}")
    empty = [frame for frame, peak in zip(ids, prepared.flatten(1).amax(1).tolist()) if peak <= 0]
    if empty:
        where = source.where(empty[0]) if source is not None else f"frame {empty[0]}"
        raise InputError(f"{where}: the mask is empty after protocol {protocol!r} prepared it")


def _positions(source: FrameSource, ids: Sequence[int]) -> list[int]:
    index = {frame: i for i, frame in enumerate(source.frame_ids)}
    return [index[i] for i in ids]


def _annotation_index(annotations: dict[str, np.ndarray] | None, gt: FrameSource, key: str) -> np.ndarray | None:
    if not annotations or key not in annotations or annotations[key] is None:
        return None
    values = np.asarray(annotations[key])
    if len(values) != len(gt.frame_ids):
        raise InputError(f"annotations[{key!r}]: {len(values)} entries for {len(gt.frame_ids)} ground-truth frames")
    return values


def _progress(total: int, enabled: bool, description: str):
    from tqdm.auto import tqdm

    return tqdm(total=total, disable=not enabled, desc=description[-60:], unit="frame", leave=False)
