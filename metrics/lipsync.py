"""LSE-D, LSE-C and the AV offset: lip sync of a method's frames against the sequence's audio, as syncnet_python scores it.

What the numbers are (``joonson/syncnet_python``: ``run_pipeline.py`` crops, ``SyncNetInstance.evaluate``
scores; Wav2Lip's ``evaluation/scores_LSE`` runs the same code and averages over videos):

- the method's frames, at 25 fps, cropped around the face (``lse_crop="syncnet"``: ``crop_video`` of
  run_pipeline: box half-size ``s = max(w, h) / 2`` and centre, each median-filtered over 13 frames
  (``scipy.signal.medfilt``, zero-padded at the ends as there), the frame padded by
  ``int(s (1 + 2 * 0.4))`` pixels of value 110, rows ``cy - s .. cy + s (1 + 0.8)`` and columns
  ``cx +- s (1 + 0.4)`` cut, resized to 224x224 by ``cv2.resize``), in BGR order, values 0..255;
- the sequence's audio as mono 16 kHz int16 (:mod:`metrics.audio`), MFCC as
  ``python_speech_features`` computes them; SyncNet features of 5-frame windows and of the
  matching 0.2 s of MFCC; distances at offsets -15..15 frames; LSE-D = the smallest mean distance,
  LSE-C = median - smallest, offset = the frame shift of the smallest (:mod:`metrics.syncnet`).

Per-frame columns: window ``t`` (frames ``t .. t+4``) writes on frame ``t`` its distance at the
chosen offset (``lse_d``), ``median - that distance`` (``lse_c``) and the offset (``av_offset``); the
frames that start no window (the last five, as syncnet_python scores ``min(frames, audio / 640) - 5``
windows) are NaN. The mean over a sequence's frames is then exactly syncnet_python's LSE-D and LSE-C
of that sequence. The values need the whole sequence (the offset is chosen over all windows), so they
are written when the sequence ends (:meth:`LipSync.finish`); in the meantime the method's frames wait
in a temporary file, so memory does not grow with the length of the video.

Recorded deviations from syncnet_python (none changes the scoring once the crops are made):

- **face boxes from dlib** (``face_region="detect"``: dlib's most confident face in the method's
  frame; ``"gt"``: the ground truth's face box, shared with the face metrics), not its S3FD
  detector: S3FD weights are not packaged. dlib boxes are tighter than S3FD's (the crop's 0.4 scale
  then shows less of the head), so absolute values differ from published ones run with S3FD. Frames
  without a detection take the box linearly interpolated from the nearest detected frames (as
  run_pipeline's ``track_shot`` fills gaps in a track), the nearest detection beyond either end;
  no face in any frame: the sequence's values are NaN. No scene cut detection, no minimum track
  length (100 frames there) or face size (100 px);
- **no video re-encoding**: crops go to the network as computed; syncnet_python writes them to an
  XVID ``.avi`` and reads them back through JPEG files;
- audio not at 16 kHz is resampled with ``scipy.signal.resample_poly`` (syncnet_python: FFmpeg);
  frames must be at 25 fps (syncnet_python re-times the video with FFmpeg; here a sequence at
  another rate is an error naming it).

``lse_crop="frame"`` is the ``wav2lip`` protocol note: Wav2Lip's ``calculate_scores_LRS.py`` scores LRS2 /
LRS3 / LRW clips that are already face crops, so it detects nothing and resizes each whole frame to
224x224 (``cv2.resize``, its ``SyncNetInstance_calc_scores.py``); the scoring is otherwise the same.
"""

from __future__ import annotations

import math
import tempfile
from typing import Any

import numpy as np
import torch

from metrics.audio import Audio
from metrics.errors import InputError, WeightsMissingError
from metrics.registry import Batch, Evaluator, MetricSpec, keyword_defaults, register
from metrics.syncnet import (
    AUDIO_RATE,
    CROP,
    FPS,
    SYNCNET_WEIGHTS,
    VSHIFT,
    WINDOW,
    SyncScores,
    audio_features,
    lip_features,
    load_syncnet,
    mfcc,
    sync_distances,
    sync_scores,
    window_count,
)
from metrics.truth import TruthStore, weight_stamp
from metrics.weights import usable_weight

CROP_SCALE = 0.4
MEDIAN_KERNEL = 13
PAD_VALUE = 110
CROPS = ("syncnet", "frame")
REGIONS = ("detect", "gt")
LSE_VERSION = 1


def track_boxes(boxes: list[tuple[float, float, float, float] | None]) -> np.ndarray | None:
    """(N,4) boxes (x1, y1, x2, y2) with the missing ones interpolated (see the module docstring); None without any."""
    found = [i for i, box in enumerate(boxes) if box is not None]
    if not found:
        return None
    known = np.array([boxes[i] for i in found], dtype=np.float64)
    frames = np.arange(len(boxes))
    return np.stack([np.interp(frames, found, known[:, k]) for k in range(4)], axis=1)


def smoothed_centres(boxes: np.ndarray) -> np.ndarray:
    """(N,3) half-size ``s``, centre ``y``, centre ``x`` of each box, median-filtered over 13 frames as crop_video does."""
    from scipy.signal import medfilt

    size = np.maximum(boxes[:, 3] - boxes[:, 1], boxes[:, 2] - boxes[:, 0]) / 2
    y, x = (boxes[:, 1] + boxes[:, 3]) / 2, (boxes[:, 0] + boxes[:, 2]) / 2
    return np.stack([medfilt(v, kernel_size=MEDIAN_KERNEL) for v in (size, y, x)], axis=1)


def syncnet_crop(image_bgr: np.ndarray, size: float, cy: float, cx: float) -> np.ndarray:
    """run_pipeline's ``crop_video`` of one (H,W,3) uint8 frame: a 224x224 crop (see the module docstring)."""
    import cv2

    pad = int(size * (1 + 2 * CROP_SCALE))
    frame = np.pad(image_bgr, ((pad, pad), (pad, pad), (0, 0)), "constant", constant_values=(PAD_VALUE, PAD_VALUE))
    my, mx = cy + pad, cx + pad
    face = frame[int(my - size):int(my + size * (1 + 2 * CROP_SCALE)),
                 int(mx - size * (1 + CROP_SCALE)):int(mx + size * (1 + CROP_SCALE))]
    return cv2.resize(face, (CROP, CROP))


def whole_frame_crop(image_bgr: np.ndarray) -> np.ndarray:
    """Wav2Lip's LRS scoring: the whole frame resized to 224x224."""
    import cv2

    return cv2.resize(image_bgr, (CROP, CROP))


def audio_windows(model: torch.nn.Module, audio: Audio, batch: int = 20) -> torch.Tensor:
    """(W, D) SyncNet audio features of every 5-frame window the track covers (``W = floor(samples /
    640) - 5`` at 16 kHz, the most any frame count can use): the ground truth's side of the score,
    the same for every method of a sequence (:func:`gt_audio_windows` computes it once)."""
    samples = _scored_samples(audio)
    windows = window_count(len(samples) // round(AUDIO_RATE / FPS), len(samples))
    if windows <= 0:
        return torch.zeros(0, model.netfcaud[-1].out_features)
    return audio_features(model, mfcc(samples, AUDIO_RATE), windows, batch)


def _scored_samples(audio: Audio) -> np.ndarray:
    """The track at 16 kHz, zero-padded to whole frames from frame 0 (what syncnet_python's MFCC sees)."""
    audio = audio.resampled(AUDIO_RATE)
    return audio.for_frames(0, math.ceil(len(audio.samples) / (AUDIO_RATE / audio.fps)))


def gt_audio_windows(model: torch.nn.Module, audio: Audio, truth: TruthStore, options: dict[str, Any]) -> torch.Tensor:
    """:func:`audio_windows` through the truth store, keyed by the track's digest and ``options`` (the
    weight file's stamp, versions, device): one computation per sequence, shared by every method."""
    stored = truth.get("syncnet_audio", options, [(audio.digest(),)],
                       lambda indices: [{"features": audio_windows(model, audio).numpy()}])
    return torch.from_numpy(stored[0]["features"])


def score_crops(model: torch.nn.Module, crops: Any, count: int, audio: Audio, vshift: int = VSHIFT,
                batch: int = 20, audio_feats: torch.Tensor | None = None) -> SyncScores | None:
    """SyncNet scores of ``count`` BGR crops (``crops(i)`` gives crop ``i``) against ``audio``
    (aligned to frame 0 at 25 fps); None when there are too few frames for a window.
    ``audio_feats``: the track's :func:`audio_windows`, when already computed."""
    windows = window_count(count, len(_scored_samples(audio)))
    if windows <= 0:
        return None
    cc = (audio_windows(model, audio, batch) if audio_feats is None else audio_feats)[:windows]
    video = []
    recent: list[torch.Tensor] = []
    pending: list[torch.Tensor] = []
    for i in range(windows + WINDOW - 1):
        recent.append(torch.from_numpy(crops(i).astype(float)).float().permute(2, 0, 1))
        recent = recent[-WINDOW:]
        if len(recent) == WINDOW:
            pending.append(torch.stack(recent, 1))  # (3, 5, 224, 224)
        if len(pending) == batch or (i == windows + WINDOW - 2 and pending):
            video.append(lip_features(model, torch.stack(pending, 0)))
            pending = []
    return sync_scores(sync_distances(torch.cat(video, 0), cc, vshift), vshift)


class _FrameSpill:
    """The method's uint8 frames in a temporary file, read back one at a time."""

    def __init__(self) -> None:
        self.file = tempfile.TemporaryFile()
        self.shape: tuple[int, ...] | None = None
        self.count = 0

    def write(self, frames: np.ndarray) -> None:
        self.shape = frames.shape[1:]
        self.file.write(np.ascontiguousarray(frames).tobytes())
        self.count += len(frames)

    def read(self, index: int) -> np.ndarray:
        size = int(np.prod(self.shape))
        self.file.seek(index * size)
        return np.frombuffer(self.file.read(size), dtype=np.uint8).reshape(self.shape)

    def close(self) -> None:
        self.file.close()


class LipSync(Evaluator):
    """One of ``lse_d`` / ``lse_c`` / ``av_offset`` (see the module docstring); values at :meth:`finish`."""

    def __init__(self, name: str, device: torch.device, *, syncnet_weights: str | None = None, lse_crop: str = "syncnet",
                 face_region: str = "detect", vshift: int = VSHIFT):
        if lse_crop not in CROPS:
            raise InputError(f"{name}: lse_crop {lse_crop!r}; choose from {', '.join(CROPS)}")
        if face_region not in REGIONS:
            raise InputError(f"{name}: face_region {face_region!r}; choose from {', '.join(REGIONS)}")
        self.name, self.columns = name, (name,)
        self.device, self.weights = device, syncnet_weights
        self.crop, self.face_region, self.vshift = lse_crop, face_region, int(vshift)
        self.ids: list[int] = []
        self.boxes: list[tuple[float, float, float, float] | None] = []
        self.spill = _FrameSpill()

    def update(self, batch: Batch) -> dict[str, np.ndarray]:
        images = batch.uint8("pred")
        self.spill.write(images)
        self.ids += list(batch.frame_ids)
        if self.crop == "syncnet":
            self.boxes += batch.share(("lipsync boxes", self.face_region), lambda: self._boxes(batch, images))
        return {}

    def _boxes(self, batch: Batch, images: np.ndarray) -> list[tuple[float, float, float, float] | None]:
        if self.face_region == "gt":
            from metrics.face import gt_faces

            return [None if face is None else tuple(map(float, face.box)) for face in gt_faces(batch)]
        from metrics.landmarks import detect_face

        return [None if face is None else tuple(map(float, face[0])) for face in batch.map(detect_face, list(images))]

    def key(self) -> tuple:
        """What the sequence's scores depend on besides the frames (shared by lse_d, lse_c, av_offset)."""
        return ("lipsync", self.weights, self.crop, self.face_region, self.vshift)

    def finish(self, audio: Audio | None, shared: dict, truth: TruthStore | None = None) -> dict[str, np.ndarray]:
        """The per-frame values of every frame seen, in order (see the module docstring). ``truth``: where
        the ground truth's audio features are computed once per sequence (None: computed here)."""
        try:
            if self.key() not in shared:
                shared[self.key()] = self._scores(audio, TruthStore() if truth is None else truth)
            scores = shared[self.key()]
        finally:
            self.spill.close()
        values = np.full(len(self.ids), np.nan)
        if scores is not None:
            column = {"lse_d": scores.frame_dist, "lse_c": scores.frame_conf,
                      "av_offset": np.full(len(scores.frame_dist), float(scores.offset))}[self.name]
            values[:len(column)] = column
        return {self.name: values}

    def _scores(self, audio: Audio | None, truth: TruthStore) -> SyncScores | None:
        if audio is None:
            raise InputError(f"{self.name}: the sequence has no audio")
        if abs(audio.fps - FPS) > 1e-6:
            raise InputError(f"{audio.source}: {self.name} scores 25 fps video (as syncnet_python re-times it); "
                             f"the frames are at {audio.fps:g} fps")
        count = self.spill.count
        if self.crop == "frame":
            def crops(i: int) -> np.ndarray:
                return whole_frame_crop(self.spill.read(i)[:, :, ::-1])
        else:
            boxes = track_boxes(self.boxes)
            if boxes is None:
                return None
            centres = smoothed_centres(boxes)

            def crops(i: int) -> np.ndarray:
                return syncnet_crop(np.ascontiguousarray(self.spill.read(i)[:, :, ::-1]), *centres[i])
        path = usable_weight(SYNCNET_WEIGHTS.key, self.weights)
        model = load_syncnet(path, self.device)
        options = {"syncnet": weight_stamp(path), "torch": torch.__version__, "device": self.device.type,
                   "version": LSE_VERSION}
        return score_crops(model, crops, count, audio, self.vshift, audio_feats=gt_audio_windows(model, audio, truth, options))


def lipsync_unavailable(options: dict) -> str | None:
    try:
        usable_weight(SYNCNET_WEIGHTS.key, options.get("syncnet_weights"))
    except WeightsMissingError as error:
        return str(error)
    if options.get("lse_crop", "syncnet") == "syncnet":
        from metrics.landmarks import dlib_unavailable

        return dlib_unavailable(options)
    return None


def _weight_files(options: dict) -> dict:
    from metrics.landmarks import DLIB_LANDMARKS

    files = {SYNCNET_WEIGHTS.key: options.get("syncnet_weights")}
    if options.get("lse_crop", "syncnet") == "syncnet":
        files[DLIB_LANDMARKS.key] = None
    return files


def _factory(name: str):
    def factory(device: torch.device, protocol: Any = None, **options: Any) -> Evaluator:
        return LipSync(name, device, **options)

    return factory


LSE_DEFAULTS = keyword_defaults(LipSync)
_NEEDS = ("audio", "weights:syncnet_v2.model", "package:dlib")
for _name, _better, _unit, _description, _range in (
    ("lse_d", False, "", "LSE-D: SyncNet distance of mouth and audio at the best offset (syncnet_python)", (0.0, math.inf)),
    ("lse_c", True, "", "LSE-C: SyncNet confidence, median minus minimum of the offset distances (syncnet_python)",
     (-math.inf, math.inf)),
    ("av_offset", False, "frames", "audio-video offset SyncNet finds (positive: the audio leads)",
     (-float(VSHIFT * 4), float(VSHIFT * 4))),
):
    register(MetricSpec(_name, higher_is_better=_better, unit=_unit, description=_description, factory=_factory(_name),
                        needs=_NEEDS, defaults=dict(LSE_DEFAULTS), check=lipsync_unavailable, kind="sequence",
                        value_range=_range, version=LSE_VERSION, weights=_weight_files,
                        reference_columns=("av_offset",) if _name == "av_offset" else ()))
