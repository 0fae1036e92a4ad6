"""An ad-hoc dataset of one sequence: ground-truth frames given directly (``cabench eval --gt``).

The sequence is a folder of images or a video (read as :func:`benchmark.io.open_frames` reads
them), with optional masks (a folder of mask images named by frame id) and optional landmarks (a
``.npy`` array (T, 68, 2) in pixels, row ``i`` for the ``i``-th ground-truth frame in frame-id
order). It has no splits, so every frame is evaluated. Its name is the folder's name or the
video's stem. In a run config it is a dataset of ``kind = "frames"``::

    [[datasets]]
    kind = "frames"
    path = "gt/"                 # or gt.mp4
    mask = "masks/"              # optional; used with [run] mask = true
    landmarks = "landmarks.npy"  # optional
    audio = "speech.wav"         # optional; default: the video's audio stream, or gt/audio.wav / gt.wav
    audio_offset = 0.0           # optional: seconds of the audio's first sample after frame 0
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from benchmark.datasets.audio import audio_file_of
from benchmark.datasets.base import LANDMARKS, DatasetReader, Sequence
from benchmark.io import open_frames, open_masks
from metrics.errors import InputError


def sequence_name(path: str | Path) -> str:
    """The name of the ad-hoc sequence at ``path``: a folder's name, a video's stem."""
    path = Path(path)
    return path.stem if path.is_file() else path.name


def read_frames_sequence(path: str | Path, mask: str | Path | None = None, landmarks: str | Path | None = None,
                         name: str | None = None, audio: str | Path | None = None, audio_offset: float = 0.0) -> Sequence:
    """The ad-hoc sequence at ``path`` (see the module docstring); errors name the file."""
    frames = open_frames(str(path))
    masks = open_masks(str(mask)) if mask is not None else None
    if masks is not None:
        absent = sorted(set(frames.frame_ids) - set(masks.frame_ids))
        if absent:
            raise InputError(f"{mask}: no mask for frames {', '.join(map(str, absent[:8]))}")
    annotations = {}
    if landmarks is not None:
        option = "landmarks (--landmarks of cabench eval, landmarks = of a [[datasets]] entry)"
        try:
            values = np.load(landmarks, allow_pickle=False)
        except (OSError, ValueError, EOFError) as error:
            reason = "the file is empty" if isinstance(error, EOFError) else str(error) or type(error).__name__
            raise InputError(f"{landmarks}: cannot read the {option} as a .npy array ({reason})") from None
        if not isinstance(values, np.ndarray) or values.dtype.kind not in "iuf":
            raise InputError(f"{landmarks}: {option} must be a numeric .npy array, got {type(values).__name__}"
                             f"{'' if not isinstance(values, np.ndarray) else ' of dtype ' + str(values.dtype)}")
        if values.ndim != 3 or values.shape[1:] != (68, 2) or len(values) != len(frames.frame_ids):
            raise InputError(f"{landmarks}: landmarks of shape {values.shape}, expected ({len(frames.frame_ids)}, 68, 2) "
                             "(one row per ground-truth frame, in frame-id order)")
        finite = np.isfinite(values).all(axis=(1, 2))
        if not finite.all():
            bad = [frames.frame_ids[i] for i in np.flatnonzero(~finite)[:8]]
            raise InputError(f"{landmarks}: {option} hold NaN or infinite values for frame(s) "
                             f"{', '.join(map(str, bad))}{' ...' if (~finite).sum() > 8 else ''}")
        annotations[LANDMARKS] = np.asarray(values, dtype=np.float64)
    root = Path(path)
    return Sequence(name=name or sequence_name(path), frames=frames, mask=masks, annotations=annotations,
                    fps=frames.fps, root=root if root.is_dir() else root.parent, kind="frames",
                    audio_file=audio_file_of(root, audio), audio_offset=float(audio_offset))


READER = DatasetReader("frames", None, lambda path: [read_frames_sequence(path)])
