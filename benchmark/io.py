"""Lazily read frame sequences: folders of images, video files, in-memory arrays, mask folders.

Conventions:
- A frame is uint8 RGB (H,W,3). A source with alpha (RGBA PNGs, (T,H,W,4) arrays, or frames
  with a matte file beside them) is composited on a chosen background colour (white by default,
  as every avatar repository composites its ground truth) and its alpha is kept as the matte in
  [0,1]; the colour as stored is kept too (``Frames.colour``), so that an evaluation protocol can
  start from what a published script loaded (the stored colour and the matte, composited in float
  or not at all) rather than from the uint8 composite.
- Frames of an image folder are ordered and identified by the last number in the file name, so
  ``1.png, 2.png, 10.png`` and ``00000.png, 00001.png`` both read in the right order, and
  predictions and ground truth are aligned by that id, never by list position.
- Frames are read in batches on demand; a source holds file names, not pixels, so memory does
  not grow with the length of the video.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from benchmark.stamps import array_stamp, file_stamp, files_stamp, text_stamp
from metrics.errors import InputError
from metrics.frames import Frames

__all__ = ["Frames", "FrameSource"]

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")
VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v")
_NUMBER = re.compile(r"(\d+)")


BATCH_SIZE = 8
"""Frames per evaluation batch unless a run says otherwise. Values depend on it only through the float32
rounding of batched torch reductions (every metric is per frame or carries its state across batches;
measured at most 2e-9, tested). 8, not 16: glibc serves each allocation over
32 MB with fresh pages from the kernel, faulted in on first touch, and at 512x512 a float32 batch of 16
RGB frames is 50 MB, so every temporary of the frame-sized arithmetic paid for its pages again (the
measurements: docs/performance.md, "Evaluation batch size")."""


class FrameSource:
    """An ordered, lazily read set of frames identified by integer frame ids."""

    name: str = "frames"
    frame_ids: list[int]
    size: tuple[int, int]
    fps: float | None = None
    is_video: bool = False  # a video file: it cannot carry alpha

    def read(self, ids: Sequence[int]) -> Frames:
        raise NotImplementedError

    def batches(self, batch_size: int, ids: Sequence[int] | None = None) -> Iterator[Frames]:
        """Yield the frames of ``ids`` (default: all, in order) in batches of ``batch_size``."""
        if batch_size < 1:
            raise InputError(f"batch_size must be at least 1, got {batch_size}")
        ids = list(self.frame_ids if ids is None else ids)
        for start in range(0, len(ids), batch_size):
            yield self.read(ids[start : start + batch_size])

    def __len__(self) -> int:
        return len(self.frame_ids)

    def where(self, frame: int) -> str:
        """Where frame ``frame`` comes from, for messages: the source's name and the frame id."""
        return f"{self.name} (frame {frame})"

    def content_key(self, ids: Sequence[int] | None = None) -> str:
        """A stamp of frames ``ids`` (default: all) that changes whenever their content does, used to
        fingerprint stored results (:mod:`benchmark.stamps`). This default reads and hashes the
        frames, which is exact for any source; sources that know their files or arrays override it
        with a stamp that reads (almost) nothing."""
        ids = list(self.frame_ids if ids is None else ids)
        stamps = []
        for frames in self.batches(32, ids):
            stamps.append(array_stamp(frames.rgb))
            stamps.append("" if frames.alpha is None else array_stamp(frames.alpha))
        return text_stamp("decoded", ids, *stamps)

    def _check_ids(self, ids: Sequence[int]) -> None:
        known = set(self.frame_ids)
        unknown = [i for i in ids if i not in known]
        if unknown:
            raise InputError(f"{self.name}: no frame with id {_short_list(unknown)}")


def composite(rgba: np.ndarray, background: tuple[int, int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Composite uint8 RGBA (...,4) on ``background`` (0-255 per channel); returns (rgb uint8, alpha float32)."""
    alpha = rgba[..., 3].astype(np.float32) / 255.0
    rgb = rgba[..., :3].astype(np.float32)
    bg = np.asarray(background, dtype=np.float32)
    out = rgb * alpha[..., None] + bg * (1.0 - alpha[..., None])
    return np.clip(np.rint(out), 0, 255).astype(np.uint8), alpha


def frame_id_of(path: Path) -> int:
    """The frame id of an image file: the last run of digits in its stem (``frame_0012`` -> 12)."""
    numbers = _NUMBER.findall(path.stem)
    if not numbers:
        raise InputError(f"{path}: file name has no frame number")
    return int(numbers[-1])


def read_image(path: Path) -> np.ndarray:
    """Read an image file fully as uint8 (H,W,3) or (H,W,4); truncated or unreadable files raise InputError."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            image.load()
            if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
                array = np.asarray(image.convert("RGBA"))
            elif image.mode in ("I;16", "I;16B", "I;16L", "I"):
                array = np.asarray(image, dtype=np.float64)
                array = np.clip(np.rint(array / 257.0), 0, 255).astype(np.uint8)
                array = np.repeat(array[..., None], 3, axis=-1)
            else:
                array = np.asarray(image.convert("RGB"))
    except FileNotFoundError:
        raise InputError(f"{path}: file not found") from None
    except (OSError, SyntaxError, ValueError) as error:
        raise InputError(f"{path}: unreadable or truncated image ({error})") from None
    return np.ascontiguousarray(array)


def list_folder(folder: Path) -> list[Path]:
    """The entries of ``folder``, sorted; a folder the system refuses to list is an InputError naming it."""
    try:
        return sorted(folder.iterdir())
    except OSError as error:
        raise InputError(f"{folder}: cannot list the folder ({error.strerror or error})") from None


def list_images(folder: Path) -> dict[int, Path]:
    """Map frame id -> image path for a folder; duplicate ids are an error naming both files."""
    if not folder.is_dir():
        raise InputError(f"{folder}: not a folder")
    files: dict[int, Path] = {}
    for entry in list_folder(folder):
        if entry.suffix.lower() not in IMAGE_EXTENSIONS or entry.name.startswith("."):
            continue
        frame = frame_id_of(entry)
        if frame in files:
            raise InputError(f"{folder}: {files[frame].name} and {entry.name} both have frame id {frame}")
        files[frame] = entry
    if not files:
        raise InputError(f"{folder}: no images ({', '.join(IMAGE_EXTENSIONS)}) in the folder")
    return dict(sorted(files.items()))


class FileFrames(FrameSource):
    """Frames read from explicitly listed files ``{frame id: path}``; RGBA is composited on
    ``background`` with its alpha kept as the matte.

    ``mattes`` (optional, ``{frame id: path}``) gives each frame a matte from a separate mask image
    (its alpha, or else its first channel, scaled to [0,1]), as the IMavatar layout keeps MODNet
    mattes beside RGB frames: the frame is then composited with it exactly as with an alpha channel.
    Every listed file must exist (checked up front, so a missing frame is reported by its path
    before any work starts); sizes are checked against the first file as frames are read.
    """

    def __init__(self, files: dict[int, Path], name: str, background: tuple[int, int, int] = (255, 255, 255),
                 fps: float | None = None, source: str | None = None, mattes: dict[int, Path] | None = None):
        if not files:
            raise InputError(f"{name}: no frames listed")
        _check_listed(files, "frame", source)
        if mattes is not None:
            absent = [frame for frame in files if frame not in mattes]
            if absent:
                raise InputError(f"{name}: no matte listed for frame {_short_list(absent)}")
            _check_listed({frame: mattes[frame] for frame in files}, "matte", source)
        self.mattes = None if mattes is None else {int(k): Path(mattes[k]) for k in files}
        self.files = {int(k): Path(v) for k, v in sorted(files.items())}
        self.frame_ids = list(self.files)
        self.name = name
        self.background = tuple(int(c) for c in background)
        self.fps = fps
        first = read_image(self.files[self.frame_ids[0]])
        self.size = (int(first.shape[0]), int(first.shape[1]))

    def path_of(self, frame: int) -> Path:
        return self.files[frame]

    def where(self, frame: int) -> str:
        return f"{self.files[frame]} (frame {frame})" if frame in self.files else super().where(frame)

    def content_key(self, ids: Sequence[int] | None = None) -> str:
        """The files' stamps (size, mtime, end blocks: :func:`benchmark.stamps.file_stamp`), mattes included."""
        ids = list(self.frame_ids if ids is None else ids)
        self._check_ids(ids)
        paths = [self.files[i] for i in ids] + ([self.mattes[i] for i in ids] if self.mattes is not None else [])
        return text_stamp(type(self).__name__, self.background, ids, files_stamp(paths))

    def _read_checked(self, frame: int, path: Path | None = None) -> np.ndarray:
        path = self.files[frame] if path is None else path
        array = read_image(path)
        if array.shape[:2] != self.size:
            raise InputError(
                f"{path}: size {array.shape[1]}x{array.shape[0]} differs from "
                f"{self.size[1]}x{self.size[0]} (the first frame of {self.name})"
            )
        return array

    def read(self, ids: Sequence[int]) -> Frames:
        self._check_ids(ids)
        rgbas = []
        for frame in ids:
            array = self._read_checked(frame)
            if self.mattes is not None:
                matte = self._read_checked(frame, self.mattes[frame])
                matte = matte[..., 3] if matte.shape[-1] == 4 else matte[..., 0]
                array = np.concatenate([array[..., :3], matte[..., None]], axis=-1)
            rgbas.append(array)
        return frames_from_arrays(list(ids), rgbas, self.background)


def frames_from_arrays(ids: list[int], arrays: Sequence[np.ndarray], background: tuple[int, int, int]) -> Frames:
    """One batch from uint8 frames (H,W,3) or (H,W,4): RGBA composited on ``background``, its alpha
    kept as the matte and its colour as stored; frames without alpha count as opaque."""
    if not any(array.shape[-1] == 4 for array in arrays):
        return Frames(ids, np.stack(arrays), None)
    rgbs, alphas, colours = [], [], []
    for array in arrays:
        if array.shape[-1] == 4:
            rgb, alpha = composite(array, background)
        else:
            rgb, alpha = array, np.ones(array.shape[:2], dtype=np.float32)
        rgbs.append(rgb)
        alphas.append(alpha)
        colours.append(array[..., :3])
    return Frames(ids, np.stack(rgbs), np.stack(alphas), np.stack(colours))


def _check_listed(files: dict[int, Path], what: str, source: str | None) -> None:
    missing = [Path(p) for p in files.values() if not Path(p).is_file()]
    if missing:
        where = f" (listed in {source})" if source else ""
        more = f" and {len(missing) - 1} more" if len(missing) > 1 else ""
        raise InputError(f"{missing[0]}: {what} file not found{where}{more}")


class MaskFiles(FileFrames):
    """Mask images listed explicitly: alpha (RGBA) or the first channel, scaled to [0,1], as ``alpha``."""

    def read(self, ids: Sequence[int]) -> Frames:
        self._check_ids(ids)
        masks = []
        for frame in ids:
            array = self._read_checked(frame)
            channel = array[..., 3] if array.shape[-1] == 4 else array[..., 0]
            masks.append(channel.astype(np.float32) / 255.0)
        return mask_frames(list(ids), np.stack(masks))


def mask_frames(ids: list[int], mask: np.ndarray) -> Frames:
    """Frames that carry a mask (N,H,W) in [0,1] as ``alpha`` (and as grey RGB, for viewing)."""
    rgb = np.repeat(np.rint(mask * 255).astype(np.uint8)[..., None], 3, axis=-1)
    return Frames(ids, rgb, mask.astype(np.float32))


class ImageFolder(FileFrames):
    """A folder of PNG/JPG frames named by frame number; RGBA is composited on ``background``."""

    def __init__(self, folder: str | os.PathLike, background: tuple[int, int, int] = (255, 255, 255), fps=None):
        self.folder = Path(folder)
        super().__init__(list_images(self.folder), name=str(self.folder), background=background, fps=fps)


class MaskFolder(MaskFiles):
    """A folder of mask images named by frame number (see :class:`MaskFiles`)."""

    def __init__(self, folder: str | os.PathLike):
        self.folder = Path(folder)
        super().__init__(list_images(self.folder), name=str(self.folder))


@contextmanager
def native_messages_as_warnings(what: str) -> Iterator[None]:
    """Capture what C libraries (FFmpeg / libav inside OpenCV) print on the process's stderr while the
    block runs, and issue it as one warning about ``what`` afterwards. Their lines would otherwise
    come before cabench's own error line; as a warning, the command line keeps them for ``--debug``."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            text = capture.read().decode("utf-8", errors="replace").strip()
            if text:
                warnings.warn(f"{what}: {' | '.join(text.splitlines())}", RuntimeWarning, stacklevel=3)


class VideoFile(FrameSource):
    """A video read with OpenCV; frame ids are 0-based decode order.

    The frame count is established once by grabbing (not decoding) every frame, because the
    container's frame-count field is often wrong. Reads of consecutive ids decode sequentially.
    What FFmpeg prints while a video is opened or read becomes a warning
    (:func:`native_messages_as_warnings`).
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.name = str(self.path)
        self.is_video = True
        if not self.path.is_file():
            raise InputError(f"{self.path}: file not found")
        with native_messages_as_warnings(self.name):
            self._probe()

    def _probe(self) -> None:
        import cv2

        capture = cv2.VideoCapture(str(self.path))
        if not capture.isOpened():
            raise InputError(f"{self.path}: OpenCV cannot open this video")
        fps = capture.get(cv2.CAP_PROP_FPS)
        self.fps = float(fps) if fps and fps > 0 else None
        ok, frame = capture.read()
        if not ok:
            capture.release()
            raise InputError(f"{self.path}: the video has no readable frame")
        self.size = (int(frame.shape[0]), int(frame.shape[1]))
        count = 1
        while capture.grab():
            count += 1
        capture.release()
        self.frame_ids = list(range(count))
        self._capture = None
        self._next = 0

    def content_key(self, ids: Sequence[int] | None = None) -> str:
        """The video file's stamp (:func:`benchmark.stamps.file_stamp`) and the ids read from it."""
        ids = list(self.frame_ids if ids is None else ids)
        return text_stamp("video", ids, file_stamp(self.path))

    def _open(self, start: int):
        import cv2

        if self._capture is None or self._next != start:
            if self._capture is not None:
                self._capture.release()
            self._capture = cv2.VideoCapture(str(self.path))
            for _ in range(start):
                self._capture.grab()
            self._next = start
        return self._capture

    def read(self, ids: Sequence[int]) -> Frames:
        import cv2

        self._check_ids(ids)
        frames = []
        with native_messages_as_warnings(self.name):
            for frame in ids:
                capture = self._open(frame)
                ok, bgr = capture.read()
                if not ok:
                    raise InputError(f"{self.path}: frame {frame} could not be decoded")
                self._next = frame + 1
                frames.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
        return Frames(list(ids), np.stack(frames), None)

    def __del__(self):
        if getattr(self, "_capture", None) is not None:
            self._capture.release()


class ArrayFrames(FrameSource):
    """Frames held in a uint8 array (T,H,W,3) or (T,H,W,4); alpha is composited on ``background``."""

    def __init__(
        self,
        array: np.ndarray,
        frame_ids: Sequence[int] | None = None,
        name: str = "array",
        background: tuple[int, int, int] = (255, 255, 255),
        fps: float | None = None,
    ):
        array = np.asarray(array)
        self.name = name
        if array.ndim != 4 or array.shape[-1] not in (3, 4):
            raise InputError(f"{name}: expected a uint8 array (T,H,W,3) or (T,H,W,4), got shape {array.shape}")
        if array.dtype != np.uint8:
            raise InputError(f"{name}: expected dtype uint8, got {array.dtype}")
        if len(array) == 0:
            raise InputError(f"{name}: the array has no frames")
        self.array = array
        self.background = tuple(int(c) for c in background)
        self.frame_ids = list(range(len(array))) if frame_ids is None else [int(i) for i in frame_ids]
        if len(self.frame_ids) != len(array) or len(set(self.frame_ids)) != len(array):
            raise InputError(f"{name}: frame_ids must be {len(array)} distinct ids")
        self._index = {frame: i for i, frame in enumerate(self.frame_ids)}
        self.size = (int(array.shape[1]), int(array.shape[2]))
        self.fps = fps

    def content_key(self, ids: Sequence[int] | None = None) -> str:
        """A hash of the array's frames ``ids`` (in memory: hashed in full)."""
        ids = list(self.frame_ids if ids is None else ids)
        self._check_ids(ids)
        return text_stamp("array", self.background, ids, array_stamp(self.array[[self._index[i] for i in ids]]))

    def read(self, ids: Sequence[int]) -> Frames:
        self._check_ids(ids)
        chunk = self.array[[self._index[i] for i in ids]]
        if chunk.shape[-1] == 4:
            rgb, alpha = composite(chunk, self.background)
            return Frames(list(ids), rgb, alpha, np.ascontiguousarray(chunk[..., :3]))
        return Frames(list(ids), np.ascontiguousarray(chunk), None)


def open_frames(
    source: str | os.PathLike | np.ndarray | FrameSource,
    background: tuple[int, int, int] = (255, 255, 255),
    name: str | None = None,
) -> FrameSource:
    """Open a folder of images, a video file, a uint8 array or pass a FrameSource through."""
    if isinstance(source, FrameSource):
        return source
    if isinstance(source, np.ndarray):
        return ArrayFrames(source, name=name or "array", background=background)
    path = Path(source)
    if path.is_dir():
        return ImageFolder(path, background=background)
    if path.is_file():
        if path.suffix.lower() in VIDEO_EXTENSIONS:
            return VideoFile(path)
        raise InputError(f"{path}: not a folder of frames or a video ({', '.join(VIDEO_EXTENSIONS)})")
    raise InputError(f"{path}: no such file or folder")


def open_masks(source: str | os.PathLike | np.ndarray | FrameSource) -> FrameSource:
    """Open masks: a folder of mask images, or an array (T,H,W) / (T,1,H,W) in [0,1] or uint8."""
    if isinstance(source, FrameSource):
        return source
    if isinstance(source, np.ndarray):
        array = np.asarray(source)
        if array.ndim == 4 and array.shape[1] == 1:
            array = array[:, 0]
        if array.ndim != 3:
            raise InputError(f"mask: expected an array (T,H,W) or (T,1,H,W), got shape {source.shape}")
        if array.dtype != np.uint8:
            if not np.all(np.isfinite(array)) or array.min() < 0 or array.max() > 1:
                raise InputError("mask: float masks must be finite and in [0,1]")
            array = np.rint(array * 255).astype(np.uint8)
        rgba = np.concatenate([np.repeat(array[..., None], 3, axis=-1), array[..., None]], axis=-1)
        return ArrayFrames(rgba, name="mask", background=(0, 0, 0))
    path = Path(source)
    if path.is_dir():
        return MaskFolder(path)
    raise InputError(f"{path}: mask must be a folder of mask images")


def write_frames(folder: str | os.PathLike, frames: Frames | np.ndarray, ids: Sequence[int] | None = None,
                 ext: str = "png", digits: int = 5) -> list[Path]:
    """Write uint8 frames (n,H,W,3|4) as ``{id:0{digits}d}.{ext}``; returns the paths written."""
    from PIL import Image

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if isinstance(frames, Frames):
        ids = frames.ids if ids is None else ids
        array = frames.rgb
    else:
        array = np.asarray(frames)
    ids = list(range(len(array))) if ids is None else list(ids)
    if len(ids) != len(array):
        raise InputError(f"{folder}: {len(array)} frames but {len(ids)} ids")
    paths = []
    for frame, image in zip(ids, array):
        path = folder / f"{frame:0{digits}d}.{ext}"
        Image.fromarray(image).save(path)
        paths.append(path)
    return paths


def to_tensor(rgb: np.ndarray, device="cpu", dtype=None):
    """uint8 (n,H,W,3) -> float tensor (n,3,H,W) in [0,1] on ``device`` (float32 by default)."""
    import torch

    tensor = torch.from_numpy(np.ascontiguousarray(rgb)).to(device)
    tensor = tensor.permute(0, 3, 1, 2).to(dtype or torch.float32) / 255.0
    return tensor.contiguous()


def _short_list(values: Sequence[int], limit: int = 8) -> str:
    values = list(values)
    text = ", ".join(str(v) for v in values[:limit])
    return text + (f", ... ({len(values)} in all)" if len(values) > limit else "")
