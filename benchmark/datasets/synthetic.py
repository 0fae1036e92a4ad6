"""The synthetic talking-head dataset: smooth known motion of a real face, written in INSTA's layout.

Each sequence ``<out>/<name>/`` holds (frame ids 0-based, ``{id:05d}``):

- ``images/{id}.png``: RGBA ground truth (alpha = the matte); ``normal/{id}.png``: the
  ground-truth normal map; ``depth/{id}.png`` (uint16 mm); ``seg_mask/{id}.png`` (R channel:
  0 background, 10 face interior = the 68 landmarks' convex hull, 170 rest of the head; synthetic
  classes, not INSTA's face-parsing codes);
- ``stage1/rgb/{id}.png`` (RGBA) and ``stage1/normal/{id}.png``: the coarse stage-1 proxy for
  every frame. Like INSTA's renders it is over-smoothed (rendered at half size, blurred,
  upsampled) and slightly unstable in time (per-frame pose jitter of ``PROXY_POSE_JITTER_DEG``,
  expressions damped to ``PROXY_EXPRESSION_GAIN`` with noise, per-frame gain flicker);
- ``experiments/stage1_proxy/debug/overlay/{test_index}.png``: the proxy's test frames named by
  index into the test split, as INSTA's own test renders are;
- ``flame/exp/{id}.txt``: 100 expression values (the first four are ``jaw_open, smile,
  blink_left, blink_right``; the rest 0);
- ``transforms.json`` and ``transforms_{train,test,val}.json`` with INSTA's fields, every frame
  entry also holding ``pose`` (6: global + jaw axis-angle, FLAME convention), ``expression``
  (100), ``landmarks`` (68x2 pixels) and ``head_euler_deg`` (yaw, pitch, roll);
- ``.cabench-synth``: the header of ``transforms.json``, written first, marking the folder as
  cabench's while it is built (see :func:`write_sequence`);
- with ``audio``: ``audio.wav``, 16 kHz mono speech whose loudness follows the mouth opening
  (:mod:`benchmark.datasets.synthetic_audio`), the sequence's audio; with ``audio_shift`` also
  ``audio_shifted.wav``, the same track delayed by that many frames. The header then records
  ``audio`` (file, rate, shift). Audio changes no frame and no other file.

Test split of a short sequence: INSTA tests on its last 350 frames; here test = the last
``min(350, max(1, N // 4))`` frames, val = the last ``min(20, len(test))`` (inside test, as
INSTA's val is), train = the rest.

Motion: yaw, pitch and roll are sums of two sinusoids (amplitudes up to ``POSE_AMPLITUDE_DEG``),
the jaw opens and closes at a talking rate (1-2 Hz), the smile drifts slowly, and blinks are
short bumps every 2-4 s. Every random choice comes from ``numpy.random.default_rng(seed)``, so a
seed gives the same files, byte for byte.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from benchmark.datasets.insta import SYNTHETIC_GENERATOR
from benchmark.datasets.synthetic_audio import AUDIO_NAME, AUDIO_RATE, SHIFTED_NAME, speech_track
from benchmark.datasets.synthetic_face import (
    CAMERA_DISTANCE_MM,
    EXPRESSION_NAMES,
    HEAD_HALF_WIDTH_MM,
    FaceParams,
    Rendered,
    face_model,
    render,
)
from benchmark.datasets.synthetic_motion import EMOTIONS, MOTIONS, stationary_motion
from benchmark.io import list_folder
from metrics.errors import CabenchError

EXPRESSION_DIM = 100
POSE_AMPLITUDE_DEG = (15.0, 8.0, 6.0)  # yaw, pitch, roll
PROXY_POSE_JITTER_DEG = 0.6
PROXY_EXPRESSION_GAIN = 0.8
PROXY_EXPRESSION_NOISE = 0.04
PROXY_FLICKER = 0.015
MAX_TEST_FRAMES = 350
MAX_VAL_FRAMES = 20
OVERLAY_DIR = Path("experiments") / "stage1_proxy" / "debug" / "overlay"


def synthetic_splits(count: int) -> dict[str, list[int]]:
    """The split rule for synthetic sequences (see the module docstring)."""
    test = min(MAX_TEST_FRAMES, max(1, count // 4))
    val = min(MAX_VAL_FRAMES, test)
    ids = list(range(count))
    return {"train": ids[: count - test], "test": ids[count - test :], "val": ids[count - val :]}


def motion(frames: int, fps: float = 25.0, seed: int = 0) -> list[FaceParams]:
    """Smooth head pose and expression parameters for ``frames`` frames (see the module docstring)."""
    if frames < 1:
        raise CabenchError(f"--frames must be at least 1, got {frames}")
    rng = np.random.default_rng(seed)
    t = np.arange(frames) / fps
    angles = []
    for amplitude in POSE_AMPLITUDE_DEG:
        freqs = rng.uniform(0.08, 0.35, size=2)
        phases = rng.uniform(0, 2 * np.pi, size=2)
        weights = rng.uniform(0.4, 0.6, size=2)
        weights = weights / weights.sum()  # |angle| <= amplitude
        curve = sum(w * np.sin(2 * np.pi * f * t + p) for w, f, p in zip(weights, freqs, phases))
        angles.append(np.deg2rad(amplitude) * curve)
    talk_rate = rng.uniform(1.0, 2.0)
    # Speech comes in louder and quieter stretches; the mouth never stays shut for long.
    envelope = 0.35 + 0.65 * (0.5 + 0.5 * np.sin(2 * np.pi * rng.uniform(0.1, 0.25) * t + rng.uniform(0, 2 * np.pi)))
    jaw = envelope * 0.5 * (1 - np.cos(2 * np.pi * talk_rate * t + rng.uniform(0, 2 * np.pi)))
    smile = 0.5 + 0.5 * np.sin(2 * np.pi * rng.uniform(0.05, 0.15) * t + rng.uniform(0, 2 * np.pi))
    blinks = []
    for _ in range(2):
        value = np.zeros(frames)
        start = rng.uniform(0.3, 2.0)
        while start < t[-1] + 1:
            value = np.maximum(value, np.exp(-0.5 * ((t - start) / 0.06) ** 2))
            start += rng.uniform(2.0, 4.0)
        blinks.append(value)
    blink_common = np.maximum(blinks[0], 0.85 * blinks[1])
    return [
        FaceParams(
            yaw=float(angles[0][i]), pitch=float(angles[1][i]), roll=float(angles[2][i]),
            jaw_open=float(jaw[i]), smile=float(smile[i]),
            blink_left=float(blink_common[i]), blink_right=float(blink_common[i]),
        )
        for i in range(frames)
    ]


def proxy_params(params: list[FaceParams], seed: int) -> tuple[list[FaceParams], np.ndarray]:
    """The stage-1 proxy's inaccurate parameters and its per-frame brightness gains."""
    rng = np.random.default_rng([seed, 1])
    jitter = np.deg2rad(PROXY_POSE_JITTER_DEG) * rng.standard_normal((len(params), 3))
    noise = PROXY_EXPRESSION_NOISE * rng.standard_normal((len(params), len(EXPRESSION_NAMES)))
    gains = 1.0 + PROXY_FLICKER * rng.standard_normal(len(params))
    out = []
    for p, j, n in zip(params, jitter, noise):
        expr = np.clip(PROXY_EXPRESSION_GAIN * p.expression() + n, 0.0, 1.0)
        out.append(FaceParams(p.yaw + j[0], p.pitch + j[1], p.roll + j[2], *map(float, expr)))
    return out, gains


@dataclass
class SyntheticFrame:
    """Everything written for one frame."""

    params: FaceParams
    gt: Rendered
    proxy_rgba: np.ndarray    # uint8 (S,S,4)
    proxy_normal: np.ndarray  # uint8 (S,S,3)
    emotion: str | None = None  # v2's emotion class of the frame (v1: none)

    @property
    def rgba(self) -> np.ndarray:
        alpha = np.rint(self.gt.matte * 255).astype(np.uint8)
        return np.concatenate([self.gt.rgb, alpha[..., None]], axis=-1)


def render_proxy(params: FaceParams, size: int, gain: float) -> tuple[np.ndarray, np.ndarray]:
    """The over-smoothed proxy: rendered at half size, blurred, upsampled; RGBA and normal."""
    import cv2

    small = render(face_model(max(16, size // 2)), params)
    rgb = cv2.GaussianBlur(small.rgb.astype(np.float32), (0, 0), 0.8) * gain
    up = lambda a: cv2.resize(a, (size, size), interpolation=cv2.INTER_LINEAR)  # noqa: E731
    rgb = np.clip(np.rint(up(rgb)), 0, 255).astype(np.uint8)
    alpha = np.rint(np.clip(up(small.matte), 0, 1) * 255).astype(np.uint8)
    normal = up(cv2.GaussianBlur(small.normal, (0, 0), 1.0))
    return np.concatenate([rgb, alpha[..., None]], axis=-1), normal


MAX_FRAMES = 100_000
"""The most frames of one sequence: an hour at 25 fps and then some. The per-frame annotations
(``transforms.json``) are gathered in memory, about 2 KB a frame, so 200 MB at this bound."""
MAX_SIZE = 2048
"""The largest frame side, four times the paper's 512: rendering takes memory with the square of the
side (measured: `cabench synth --frames 2 --size 4096` peaked at 4.0 GB of RSS), so about 1 GB here."""


def check_arguments(frames: int, size: int, seed: int, fps: float, name: str) -> None:
    """The arguments of a synthetic sequence, checked before anything is created (CabenchError naming the option)."""
    checks = (
        (isinstance(frames, int) and 1 <= frames <= MAX_FRAMES, f"--frames must be from 1 to {MAX_FRAMES:,}, got {frames}"),
        (isinstance(size, int) and 64 <= size <= MAX_SIZE, f"--size must be from 64 to {MAX_SIZE} pixels, got {size}"),
        (isinstance(seed, int) and 0 <= seed < 2**63, f"--seed must be an integer from 0 to 2**63-1, got {seed}"),
        (isinstance(fps, (int, float)) and math.isfinite(fps) and fps > 0, f"--fps must be a positive number, got {fps}"),
        (isinstance(name, str) and bool(name) and not name.startswith(".") and "/" not in name and "\0" not in name,
         f"--name {name!r}: must be a plain folder name (no '/', not starting with '.')"),
    )
    for ok, message in checks:
        if not ok:
            raise CabenchError(message)


def sequence_motion(frames: int, fps: float, seed: int, motion_version: str = "v1") -> tuple[list[FaceParams], list[str] | None]:
    """The face parameters of every frame and, for v2, their emotion labels (v1 has none)."""
    if motion_version == "v1":
        return motion(frames, fps, seed), None
    if motion_version == "v2":
        return stationary_motion(frames, fps, seed)
    raise CabenchError(f"--motion {motion_version!r}: choose one of {', '.join(MOTIONS)}")


def generate(frames: int = 120, size: int = 256, seed: int = 0, fps: float = 25.0,
             motion_version: str = "v1") -> Iterator[SyntheticFrame]:
    """Yield the frames of one synthetic sequence, in order (``motion_version``: see :data:`MOTIONS`)."""
    if size < 64:
        raise CabenchError(f"--size must be at least 64 pixels, got {size}")
    params, labels = sequence_motion(frames, fps, seed, motion_version)
    proxies, gains = proxy_params(params, seed)
    model = face_model(size)
    for i, (p, q, g) in enumerate(zip(params, proxies, gains)):
        rgba, normal = render_proxy(q, size, float(g))
        yield SyntheticFrame(p, render(model, p), rgba, normal, None if labels is None else labels[i])


MARKER = ".cabench-synth"  # written first into a sequence being built: the folder is cabench's, complete or not
# what a sequence folder holds: a folder with these names only is an unfinished sequence
SEQUENCE_ENTRIES = {"images", "seg_mask", "depth", "normal", "stage1", "flame", "experiments", "transforms.json",
                    "transforms_train.json", "transforms_test.json", "transforms_val.json", MARKER,
                    AUDIO_NAME, SHIFTED_NAME}


def write_sequence(out: Path, frames: int = 120, size: int = 256, seed: int = 0, fps: float = 25.0,
                   name: str = "astronaut", progress: bool = True, overwrite: bool = False,
                   audio: bool = False, audio_shift: int = 0, motion_version: str = "v1") -> Path:
    """Write one sequence under ``out/name`` (see the module docstring); returns its folder.

    Every argument, and whether ``out/name`` may be written, is checked before anything is created.
    The sequence is built in a hidden folder beside it (``out/.name.partial-<pid>-*``) that is
    renamed into place when complete, so a failed or killed run never leaves a half-written
    sequence under the name (a killed run's hidden folder is removed by the next run). An existing
    ``motion_version``: the motion generator (:data:`MOTIONS`; ``v2`` is stationary and labels emotions,
    :mod:`benchmark.datasets.synthetic_motion`); v1 sequences are written byte for byte as before v2
    existed, v2 records ``"motion": "v2"`` in the header and each frame's ``emotion``. An existing
    ``out/name`` is replaced only when it is cabench's: with ``overwrite`` when it is a complete
    sequence, and always when it is an unfinished one (it carries the marker without
    ``transforms.json``, or holds nothing but a sequence's folders); stale frames of a longer
    earlier run would otherwise be read as part of this one. Any other folder is never touched.
    """
    from tqdm import tqdm

    check_arguments(frames, size, seed, fps, name)
    if motion_version not in MOTIONS:
        raise CabenchError(f"--motion {motion_version!r}: choose one of {', '.join(MOTIONS)}")
    if audio_shift and not audio:
        raise CabenchError("--audio-shift needs --audio")
    if abs(audio_shift) >= frames:
        raise CabenchError(f"--audio-shift {audio_shift}: must be shorter than the {frames} frames")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise CabenchError(f"{out}: --out exists and is not a folder")
    root = out / name
    replace = _replaceable(root, overwrite)
    out.mkdir(parents=True, exist_ok=True)
    _remove_abandoned(out, name)
    building = Path(tempfile.mkdtemp(prefix=f".{name}.partial-{os.getpid()}-", dir=out))
    try:
        header = _header(size, fps, seed, frames, audio_shift if audio else None, motion_version)
        _write_json(building / MARKER, header)
        items = tqdm(generate(frames, size, seed, fps, motion_version), total=frames, desc=f"synth {name}", disable=not progress,
                     unit="frame")
        _write_frames(building, items, frames, size, fps, seed, header)
        if audio:
            _write_audio(building, frames, fps, seed, audio_shift, motion_version)
        if replace:
            trash = Path(tempfile.mkdtemp(prefix=f".{name}.replaced-{os.getpid()}-", dir=out))
            root.rename(trash / name)
            building.rename(root)
            shutil.rmtree(trash, ignore_errors=True)
        else:
            building.rename(root)
    except BaseException:
        shutil.rmtree(building, ignore_errors=True)
        raise
    return root


def _write_audio(root: Path, frames: int, fps: float, seed: int, shift: int, motion_version: str = "v1") -> None:
    """``audio.wav`` (and ``audio_shifted.wav`` when ``shift``) from the motion's mouth opening."""
    from benchmark.datasets.audio import write_wav

    jaw = np.array([p.jaw_open for p in sequence_motion(frames, fps, seed, motion_version)[0]])
    write_wav(root / AUDIO_NAME, speech_track(jaw, fps, seed), AUDIO_RATE)
    if shift:
        write_wav(root / SHIFTED_NAME, speech_track(jaw, fps, seed, shift_frames=shift), AUDIO_RATE)


def _write_frames(root: Path, items: Iterator[SyntheticFrame], frames: int, size: int, fps: float, seed: int,
                  header: dict) -> None:
    """Write the frames and their annotations into ``root`` (the layout of the module docstring)."""
    import cv2

    folders = {k: root / k for k in ("images", "seg_mask", "depth", "normal", "stage1/rgb", "stage1/normal", "flame/exp")}
    for folder in [*folders.values(), root / OVERLAY_DIR]:
        folder.mkdir(parents=True, exist_ok=True)
    splits = synthetic_splits(frames)
    test_index = {frame: i for i, frame in enumerate(splits["test"])}
    entries = []
    for frame, item in enumerate(items):
        stem = f"{frame:05d}"
        _write_png(folders["images"] / f"{stem}.png", item.rgba)
        _write_png(folders["normal"] / f"{stem}.png", item.gt.normal)
        _write_png(folders["stage1/rgb"] / f"{stem}.png", item.proxy_rgba)
        _write_png(folders["stage1/normal"] / f"{stem}.png", item.proxy_normal)
        if frame in test_index:
            _write_png(root / OVERLAY_DIR / f"{test_index[frame]:05d}.png", item.proxy_rgba)
        cv2.imwrite(str(folders["depth"] / f"{stem}.png"), item.gt.depth)
        _write_png(folders["seg_mask"] / f"{stem}.png", _seg_mask(item.gt))
        expression = np.zeros(EXPRESSION_DIM)
        expression[: len(EXPRESSION_NAMES)] = item.params.expression()
        (folders["flame/exp"] / f"{stem}.txt").write_text(" ".join(f"{v:.6f}" for v in expression) + "\n")
        entries.append(_frame_entry(stem, item, expression))
    for split, ids in splits.items():
        _write_json(root / f"transforms_{split}.json", {**header, "frames": [entries[i] for i in ids]})
    _write_json(root / "transforms.json", {**header, "frames": entries})  # last: its presence means complete


def _replaceable(root: Path, overwrite: bool) -> bool:
    """Whether an existing ``root`` is to be replaced (see :func:`write_sequence`); refusals are errors."""
    if not root.exists() and not root.is_symlink():
        return False
    if not root.is_dir() or root.is_symlink():
        raise CabenchError(f"{root}: exists and is not a folder; choose another --out or --name")
    entries = {entry.name for entry in list_folder(root)}
    if not entries:
        return True
    complete = _generator(root / "transforms.json") == SYNTHETIC_GENERATOR
    unfinished = not complete and (MARKER in entries or entries <= SEQUENCE_ENTRIES)
    if not complete and not unfinished:
        raise CabenchError(f"{root}: folder exists and was not written by cabench synth; choose another --out or --name")
    if complete and not overwrite:
        raise CabenchError(f"{root}: a synthetic sequence is already there; pass --overwrite to replace it")
    return True


def _generator(path: Path) -> str | None:
    try:
        header = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    return header.get("generator") if isinstance(header, dict) else None


def _remove_abandoned(out: Path, name: str) -> None:
    """Remove the hidden build folders of ``name`` that runs no longer alive left behind (killed runs)."""
    for entry in list_folder(out):
        match = re.fullmatch(rf"\.{re.escape(name)}\.(partial|replaced)-(\d+)-.*", entry.name)
        if match and entry.is_dir() and not _process_alive(int(match.group(2))):
            shutil.rmtree(entry, ignore_errors=True)


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _write_png(path: Path, array: np.ndarray) -> None:
    import cv2

    if array.ndim == 3 and array.shape[-1] == 4:
        bgr = cv2.cvtColor(array, cv2.COLOR_RGBA2BGRA)
    else:
        bgr = cv2.cvtColor(array, cv2.COLOR_RGB2BGR)
    if not cv2.imwrite(str(path), bgr):
        raise CabenchError(f"{path}: could not write the image")


def _seg_mask(gt: Rendered) -> np.ndarray:
    classes = np.where(gt.matte > 0.5, 170, 0).astype(np.uint8)
    classes[gt.face & (gt.matte > 0.5)] = 10
    return np.stack([classes, np.zeros_like(classes), np.zeros_like(classes)], axis=-1)


def _frame_entry(stem: str, item: SyntheticFrame, expression: np.ndarray) -> dict:
    p = item.params
    return {
        "file_path": f"images/{stem}.png",
        "transform_matrix": _round(_camera_to_world(p.rotation()).tolist()),
        "exp_path": f"flame/exp/{stem}.txt",
        "depth_path": f"depth/{stem}.png",
        "seg_mask_path": f"seg_mask/{stem}.png",
        "normal_path": f"normal/{stem}.png",
        "pose": _round(p.pose6().tolist()),
        "expression": _round(expression.tolist()),
        "landmarks": _round(item.gt.landmarks.tolist()),
        "head_euler_deg": _round(np.rad2deg([p.yaw, p.pitch, p.roll]).tolist()),
        **({} if item.emotion is None else {"emotion": item.emotion}),
    }


def _camera_to_world(rotation: np.ndarray) -> np.ndarray:
    """OpenGL-convention camera-to-world matrix (metres) of a camera that sees the head turned by
    ``rotation``: the head stays fixed in the world and the camera moves, as INSTA stores it."""
    w2c = np.eye(4)
    w2c[:3, :3] = rotation
    w2c[2, 3] = -CAMERA_DISTANCE_MM / 1000.0
    return np.linalg.inv(w2c)


def _header(size: int, fps: float, seed: int, frames: int, audio_shift: int | None = None,
            motion_version: str = "v1") -> dict:
    # Orthographic rendering, written as a long-focal-length pinhole that covers the frame.
    half_width_m = HEAD_HALF_WIDTH_MM / 1000.0 * size / (2 * face_model(size).axes[0])
    focal = CAMERA_DISTANCE_MM / 1000.0 * (size / 2) / half_width_m
    angle = 2 * float(np.arctan(size / (2 * focal)))
    return {
        "w": size, "h": size, "cx": size / 2, "cy": size / 2, "fl_x": focal, "fl_y": focal,
        "camera_angle_x": angle, "camera_angle_y": angle, "x_fov": np.rad2deg(angle), "y_fov": np.rad2deg(angle),
        "integer_depth_scale": 0.001, "fps": fps,
        "generator": SYNTHETIC_GENERATOR, "seed": seed, "num_frames": frames,
        "source_image": "skimage.data.astronaut()",
        "expression_names": list(EXPRESSION_NAMES),
        "split_rule": f"test = last min({MAX_TEST_FRAMES}, max(1, N // 4)) frames, val = last min({MAX_VAL_FRAMES}, len(test))",
        # v2 only, so that v1 sequences stay byte for byte as they were
        **({} if motion_version == "v1" else {"motion": motion_version, "emotion_names": list(EMOTIONS)}),
        # only with audio, so that the files of a sequence without audio stay byte for byte as they were
        **({} if audio_shift is None else
           {"audio": {"file": AUDIO_NAME, "rate": AUDIO_RATE, "shifted_file": SHIFTED_NAME if audio_shift else None,
                      "shift_frames": audio_shift}}),
    }


def _write_json(path: Path, data: dict) -> None:
    path.write_text(json.dumps(data, indent=1, default=float) + "\n", encoding="utf-8")


def _round(values, digits: int = 6):
    if isinstance(values, list):
        return [_round(v, digits) for v in values]
    return round(float(values), digits)
