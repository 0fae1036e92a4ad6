"""What a run crosses: its datasets' sequences x its methods (pairs), and its protocols.

Pairs come in sequence-major order (dataset, then sequence, then method), so the methods of one
sequence run one after another while the ground truth's own work for that sequence is warm, and
each method is rendered once for all the run's protocols.
"""

from __future__ import annotations

from collections.abc import Sequence as Ids
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from benchmark.config import DatasetConfig, MethodConfig, RunConfig
from benchmark.datasets.base import Sequence
from benchmark.io import Frames, FrameSource
from benchmark.stamps import file_stamp, text_stamp
from metrics.errors import CabenchError, InputError


@dataclass
class Pair:
    """One (dataset, sequence, method) of a run: the unit of work, of sharding and of the part folders."""

    dataset: DatasetConfig
    sequence: Sequence
    method: MethodConfig

    @property
    def label(self) -> str:
        return f"{self.dataset.name}/{self.sequence.name}/{self.method.name}"


def protocols_of(config: RunConfig) -> list[str]:
    """The protocol ids of a run: its ids, ``"all"`` among them standing for every protocol."""
    from metrics.protocols import PROTOCOLS, get_protocol

    expanded = []
    for name in config.protocol:
        expanded += list(PROTOCOLS) if name == "all" else [name]
    if not expanded:
        raise CabenchError("protocol: no protocol given")
    return [get_protocol(name).id for name in dict.fromkeys(expanded)]


def named_protocols(config: RunConfig) -> list[str]:
    """The protocol ids the config names itself, not through ``all``."""
    from metrics.protocols import get_protocol

    return [get_protocol(name).id for name in dict.fromkeys(config.protocol) if name != "all"]


def open_datasets(config: RunConfig) -> list[tuple[DatasetConfig, list[Sequence]]]:
    from benchmark.datasets import open_dataset
    from benchmark.datasets.adhoc import read_frames_sequence

    opened = []
    for dataset in config.datasets:
        if dataset.kind == "frames":
            sequences = [read_frames_sequence(dataset.path, dataset.mask, dataset.landmarks,
                                              audio=dataset.audio, audio_offset=dataset.audio_offset)]
            if dataset.sequences and sequences[0].name not in dataset.sequences:
                raise InputError(f"{dataset.path}: no sequence {dataset.sequences[0]!r} (has {sequences[0].name})")
        else:
            found = open_dataset(dataset.path, kind=dataset.kind)
            sequences = [found.sequence(name) for name in dataset.sequences] if dataset.sequences else list(found)
            if dataset.audio:  # the config names each sequence's audio file
                for sequence in sequences:
                    sequence.audio_file = Path(dataset.audio.format(sequence=sequence.name))
                    sequence.audio_offset = dataset.audio_offset
        if not sequences:
            raise InputError(f"{dataset.path}: dataset {dataset.name!r} has no sequences")
        opened.append((dataset, sequences))
    return opened


def plan(config: RunConfig) -> list[Pair]:
    """Every (dataset, sequence, method) of the config, sequence-major (see the module docstring)."""
    return [Pair(dataset, sequence, method) for dataset, sequences in open_datasets(config)
            for sequence in sequences for method in config.methods]


class SubsetFrames(FrameSource):
    """The frames of ``source`` whose ids are in ``ids`` (in the source's order)."""

    def __init__(self, source: FrameSource, ids: Ids[int]):
        keep = set(int(i) for i in ids)
        self.source = source
        self.name = source.name
        self.frame_ids = [i for i in source.frame_ids if i in keep]
        self.size = source.size
        self.fps = source.fps
        self.is_video = source.is_video

    def read(self, ids: Ids[int]) -> Frames:
        self._check_ids(ids)
        return self.source.read(ids)

    def content_key(self, ids: Ids[int] | None = None) -> str:
        return self.source.content_key(self.frame_ids if ids is None else ids)

    def where(self, frame: int) -> str:
        return self.source.where(frame)


def landmarks_of(sequence: Sequence, ids: list[int]) -> np.ndarray | None:
    """The ground truth's 68 landmarks (N, 68, 2) of frames ``ids``, or None when it has none."""
    annotations = getattr(sequence, "annotations", None) or {}
    if "landmarks" not in annotations:
        return None
    index = {frame: i for i, frame in enumerate(sequence.frames.frame_ids)}
    return np.asarray(annotations["landmarks"])[[index[i] for i in ids]]


def sequence_audio(sequence: Sequence, ids: list[int]):
    """The sequence's audio over frames ``ids`` (contiguous), aligned to the first of them; None when it
    has none, or when ``ids`` are not contiguous (lip sync is scored on a continuous stretch only)."""
    audio = sequence.audio() if getattr(sequence, "audio_file", None) is not None else None
    if audio is None or not ids:
        return None
    positions = {frame: i for i, frame in enumerate(sequence.frames.frame_ids)}
    start, stop = positions[ids[0]], positions[ids[-1]] + 1
    if stop - start != len(ids):
        return None
    return type(audio)(audio.for_frames(start, stop), audio.rate, audio.fps, 0.0, audio.source)


def uses_mask(config: RunConfig, sequence: Sequence) -> bool:
    return bool(config.mask) and getattr(sequence, "mask", None) is not None


def truth_stamp(config: RunConfig, sequence: Sequence, ids: list[int]) -> str:
    """The content stamp of what the ground truth gives a run: the frames of ``ids``, and the masks
    and landmarks of those frames where the run uses them."""
    from benchmark.stamps import array_stamp

    landmarks = landmarks_of(sequence, ids)
    parts = [sequence.frames.content_key(ids),
             sequence.mask.content_key(ids) if uses_mask(config, sequence) else "no mask",
             "no landmarks" if landmarks is None else array_stamp(landmarks)]
    audio_file = getattr(sequence, "audio_file", None)
    if audio_file is not None:  # only sequences with audio: the stamps of the others stay as they were
        found = file_stamp(audio_file) if Path(audio_file).is_file() else "absent"
        parts.append(text_stamp("audio", found, getattr(sequence, "audio_offset", 0.0)))
    return text_stamp(*parts)
