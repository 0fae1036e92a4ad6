"""Evaluation protocols: how frames are prepared and how each per-frame image metric is computed.

Published avatar numbers are not comparable across papers because each repository computes them
differently. A protocol names one such convention; every number the harness reports carries the
id of the protocol that produced it. ``canonical`` is the harness's own definition; the others
reproduce a published evaluation script, quirks included, so that published numbers can be
cross-checked. Each class docstring says what it reproduces.

A protocol does two things:
- preparation turns aligned frames (and an optional mask, and the ground truth's 68 landmarks
  where the protocol needs them) into float tensors in [0,1] on the device: the resolution, the
  mask and any morphological step of the original script happen here. It is split in two halves:
  ``prepare_gt`` depends on the ground truth alone (so work derived from it can be done once per
  sequence and shared by every method), ``prepare_pred`` prepares a method's frames to match it.
  ``prepare`` runs both. Temporal and face metrics see the same prepared frames.
- ``frame_metric`` computes ``l1``, ``l2``, ``psnr``, ``ssim`` or ``lpips`` per frame with the
  original's formula: ``kernels()`` maps each metric name to its kernel, and a protocol that reproduces
  a script replaces the kernels whose formula differs. A metric the original does not compute is listed in ``unsupported``, with the
  reason, and is reported as missing rather than computed some other way.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

from metrics import image
from metrics.errors import CabenchError, InputError
from metrics.frames import Frames
from metrics.lazy import Registry

FRAME_METRICS = ("l1", "l2", "psnr", "ssim", "lpips")
# kernel(pred, gt, mask, **options) -> one value per frame (see Protocol.kernels)
Kernel = Callable[..., torch.Tensor]


@dataclass
class PreparedTruth:
    """The ground truth's half of a prepared batch: frames (N,3,H,W) and mask (N,1,H,W) or None."""

    gt: torch.Tensor
    mask: torch.Tensor | None


@dataclass
class Prepared:
    pred: torch.Tensor
    gt: torch.Tensor
    mask: torch.Tensor | None


def _to_tensor(rgb: np.ndarray, device: torch.device) -> torch.Tensor:
    """uint8 (N,H,W,3) -> float32 (N,3,H,W) in [0,1] (x / 255) on ``device``."""
    # (N,H,W,3) memory seen as (N,3,H,W) is channels-last, the layout the SSIM convolution wants
    tensor = torch.from_numpy(np.ascontiguousarray(rgb)).to(device)
    return tensor.permute(0, 3, 1, 2).float().div_(255.0).contiguous(memory_format=torch.channels_last)


def _float_tensor(images: np.ndarray, device: torch.device) -> torch.Tensor:
    """float32 (N,H,W,3) already in [0,1] -> (N,3,H,W) on ``device``, channels-last."""
    tensor = torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32)).to(device)
    return tensor.permute(0, 3, 1, 2).contiguous(memory_format=torch.channels_last)


def _rgb(frames: Frames | np.ndarray) -> np.ndarray:
    """The uint8 RGB (N,H,W,3) of a batch, composited on the reader's background where it had alpha."""
    return frames.rgb if isinstance(frames, Frames) else frames


def _stored(frames: Frames | np.ndarray) -> np.ndarray:
    """The uint8 colour channels (N,H,W,3) as the source stored them, alpha dropped."""
    return frames.stored if isinstance(frames, Frames) else frames


def _matte(frames: Frames | np.ndarray) -> np.ndarray | None:
    return frames.alpha if isinstance(frames, Frames) else None


def _composited_on_white(frames: Frames | np.ndarray, device: torch.device) -> torch.Tensor:
    """Float frames (N,3,H,W): a source with alpha composited on white in float32,
    ``colour * alpha + (1 - alpha)`` with colour = stored / 255 (no uint8 rounding of the
    composite); a source without alpha as it is. A batch whose stored colour is unknown (an
    adapter that composited already) falls back to its uint8 composite.
    """
    alpha = _matte(frames)
    if alpha is None or frames.colour is None:
        return _to_tensor(_rgb(frames), device)
    colour = _to_tensor(frames.colour, device)
    alpha = torch.from_numpy(np.ascontiguousarray(alpha, dtype=np.float32)).to(device)[:, None]
    return colour.mul_(alpha).add_(1 - alpha)  # in place: the same two roundings, no 50 MB temporaries


def _load_as_script(images: np.ndarray, size: int) -> np.ndarray:
    """Frames as IMavatar's and PointAvatar's ``_load_img`` make them: float32 0-255, resized to
    size x size by OpenCV's default bilinear when the width (``shape[-2]`` of an (H,W,C) image, the
    scripts' test) differs from ``size``, then divided by 255. (N,H,W,C) float32 -> (N,h,w,C)."""
    import cv2

    loaded = []
    for frame in images:
        frame = frame.astype(np.float32)
        if frame.shape[-2] != size:
            frame = cv2.resize(frame, (size, size))
        loaded.append(frame / 255.0)
    return np.stack(loaded)


def _mask_tensor(mask: np.ndarray | None, device: torch.device) -> torch.Tensor | None:
    if mask is None:
        return None
    return torch.from_numpy(np.ascontiguousarray(mask, dtype=np.float32)).to(device)[:, None]


@dataclass(frozen=True)
class Protocol:
    """The canonical protocol (the default).

    Images in [0,1] float RGB; frames with alpha (RGBA files, or frames with a matte) composited
    on a white background in float, ``colour * alpha + (1 - alpha)``, for the prediction and the
    ground truth alike (no uint8 rounding of the composite, the order INSTA's, NHA's and
    PointAvatar's evaluations use); full frame at native resolution, or the pixels of a given mask.
    L1 = mean absolute error, L2 = mean squared error, PSNR = 10 log10(1/MSE) per frame;
    SSIM = Gaussian window 11, sigma 1.5, K1 0.01, K2 0.03, data range 1, valid region (equal to
    scikit-image ``structural_similarity(gaussian_weights=True, sigma=1.5,
    use_sample_covariance=False, data_range=1, channel_axis=-1)``); LPIPS = AlexNet v0.1 of the
    ``lpips`` package on inputs mapped to [-1,1]. Each metric is computed per frame, then averaged
    over frames. With a mask, every metric is restricted to (weighted by) the mask.
    """

    id: str = "canonical"
    # bumped whenever a change alters the numbers the protocol gives for the same input
    version: int = 2
    resolution: int | None = None
    accepts_mask: bool = True
    needs_landmarks: bool = False
    unsupported: dict[str, str] = field(default_factory=dict)

    @property
    def description(self) -> str:
        return (self.__doc__ or "").strip().splitlines()[0]

    def prepare(self, pred: Frames | np.ndarray, gt: Frames | np.ndarray, mask: np.ndarray | None = None,
                landmarks: np.ndarray | None = None, device: torch.device | str = "cpu") -> Prepared:
        """Both halves: uint8 (N,H,W,3) pred and gt (or their :class:`Frames`), mask (N,H,W) in [0,1]."""
        truth = self.prepare_gt(gt, mask, landmarks, device)
        return Prepared(self.prepare_pred(pred, truth, device), truth.gt, truth.mask)

    def prepare_gt(self, gt: Frames | np.ndarray, mask: np.ndarray | None = None, landmarks: np.ndarray | None = None,
                   device: torch.device | str = "cpu") -> PreparedTruth:
        """The ground truth's half; depends on the ground truth (its mask, its landmarks) alone."""
        self._check_mask(mask)
        device = torch.device(device)
        return PreparedTruth(_composited_on_white(gt, device), _mask_tensor(mask, device))

    def prepare_pred(self, pred: Frames | np.ndarray, truth: PreparedTruth, device: torch.device | str = "cpu") -> torch.Tensor:
        """A method's frames prepared to be compared with ``truth``."""
        return _composited_on_white(pred, torch.device(device))

    def input_problem(self, metric: str, size: tuple[int, int], landmarks: bool, mask: bool) -> str | None:
        """Why ``metric`` cannot run under this protocol on a ground truth of ``size`` (height, width),
        with or without the ground truth's landmarks and a mask, and the fix; None when it can. Decided
        from the input's description alone, so a run knows before any work which protocols fit it."""
        if mask and not self.accepts_mask:
            return f"protocol {self.id!r} evaluates the full frame as the original script does; drop --mask"
        return None

    def _check_mask(self, mask: np.ndarray | None) -> None:
        if mask is not None and not self.accepts_mask:
            raise CabenchError(f"protocol {self.id!r} evaluates the full frame as the original script does; drop --mask")

    def kernels(self) -> dict[str, Kernel]:
        """Each frame metric's kernel under this protocol: ``kernel(pred, gt, mask, **options)``, one
        value per frame. A protocol that reproduces a script replaces the kernels whose formula differs."""
        return {
            "l1": lambda pred, gt, mask: image.l1(pred, gt, mask),
            "l2": lambda pred, gt, mask: image.l2(pred, gt, mask),
            "psnr": lambda pred, gt, mask: image.psnr(pred, gt, mask),
            "ssim": lambda pred, gt, mask: image.ssim(pred, gt, mask),
            "lpips": lambda pred, gt, mask, **options: image.lpips(pred, gt, mask=mask, **options),
        }

    def frame_metric(self, name: str, pred: torch.Tensor, gt: torch.Tensor, mask: torch.Tensor | None,
                     **options) -> torch.Tensor:
        if name in self.unsupported:
            raise CabenchError(f"protocol {self.id!r} has no {name}: {self.unsupported[name]}")
        kernel = self.kernels().get(name)
        if kernel is None:
            raise CabenchError(f"{name!r} is not a frame metric of protocol {self.id!r}")
        return kernel(pred, gt, mask, **options)


@dataclass(frozen=True)
class IMavatarProtocol(Protocol):
    """IMavatar's ``code/utils/calculate_metrics.py`` (the script the author released for the paper).

    Preparation in the script's order: each frame's colour channels as stored (an RGBA file's alpha
    is dropped, as ``imread(...)[..., :3]`` drops it), as float32 0-255, resized to 256 x 256 by
    OpenCV's default bilinear (only when the width differs from 256: the script tests
    ``shape[-2]``), then divided by 255. The mask is the filled convex hull of the ground truth's
    68 keypoints (``only_face_interior``), replacing the matte: keypoints in [-1,1] (pixels /
    (size / 2) - 1, IMavatar's storage) mapped to ``int((k + 1) * 256 / 2)``; the ground truth is
    set to white outside it. L2 = MSE over hull pixels, ``sum(mask*(p-g)^2) / (sum(mask)*3)``; L1
    = MAE over hull pixels (the number the script prints; its "l1" variable is really MSE); PSNR =
    20 log10(1/(RMSE + 1e-8)) from the masked RMSE; SSIM = Gaussian 11 / sigma 1.5 valid SSIM on
    images set to 0 outside the hull in both, averaged over the whole frame, in float32 with the
    script's rounding (:func:`metrics.image.ssim_pytorch_metrics`, the same function as PointAvatar's);
    LPIPS alex with ``normalize=True`` on the zeroed images. Without landmarks, a given mask stands
    for the hull.
    """

    id: str = "imavatar"
    version: int = 3
    resolution: int | None = 256
    needs_landmarks: bool = True

    def input_problem(self, metric, size, landmarks, mask):
        if not landmarks and not mask:
            return (f"protocol {self.id!r} needs the ground truth's 68 landmarks for the face hull (--landmarks "
                    "FILE.npy, or a dataset with keypoints) or --mask")
        return super().input_problem(metric, size, landmarks, mask)

    def prepare_gt(self, gt, mask=None, landmarks=None, device="cpu") -> PreparedTruth:
        import cv2

        device = torch.device(device)
        height, width = _stored(gt).shape[1:3]
        loaded = _load_as_script(_stored(gt), self.resolution)
        canvas_shape = loaded.shape[1:3]
        if landmarks is not None:
            hull_masks = []
            for points in np.asarray(landmarks, dtype=np.float64):
                if points.shape != (68, 2) or not np.all(np.isfinite(points)):
                    raise InputError("imavatar protocol: landmarks must be finite (68,2) pixel coordinates per frame")
                normalised = points / (np.array([width, height]) / 2.0) - 1.0
                keypoints = ((normalised + 1.0) * self.resolution / 2).astype(int)
                hull = cv2.convexHull(keypoints).squeeze().astype(np.int32)
                canvas = np.zeros(canvas_shape, dtype=np.uint8)
                cv2.fillPoly(canvas, pts=[hull], color=1)
                hull_masks.append(canvas.astype(np.float32))
            mask = np.stack(hull_masks)
        elif mask is not None:
            mask = np.stack([cv2.resize(m, canvas_shape[::-1], interpolation=cv2.INTER_NEAREST) for m in mask])
            mask = (mask > 0.5).astype(np.float32)
        else:
            raise InputError(self.input_problem("", (0, 0), landmarks=False, mask=False))
        hull = mask[..., None]
        on_white = loaded * hull + 1.0 * (1 - hull)  # "our prediction has white background, so do the same for GT"
        return PreparedTruth(_float_tensor(on_white, device), _mask_tensor(mask, device))

    def prepare_pred(self, pred, truth, device="cpu") -> torch.Tensor:
        return _float_tensor(_load_as_script(_stored(pred), self.resolution), torch.device(device))

    def kernels(self) -> dict[str, Kernel]:
        return {
            **super().kernels(),
            "psnr": lambda pred, gt, mask: image.psnr_with_epsilon(image.l2(pred, gt, mask)),
            "ssim": lambda pred, gt, mask: image.ssim_pytorch_metrics(pred * mask, gt * mask),
            "lpips": lambda pred, gt, mask, **options: image.lpips(pred * mask, gt * mask, normalize=True, **options),
        }


@dataclass(frozen=True)
class PointAvatarProtocol(Protocol):
    """PointAvatar's ``code/utils/metrics.py`` as called by ``code/scripts/test.py`` (default pass).

    Preparation in the script's order: the prediction's colour channels as stored go through a 3x3
    ``cv2.erode`` then ``cv2.dilate`` at their own size (``plots.py`` writes the
    ``rgb_erode_dilate`` folder from the uint8 render); prediction, ground truth and matte are then
    loaded as float32 0-255, resized to 512 x 512 by OpenCV's default bilinear (only when the width
    differs from 512: the script tests ``shape[-2]``) and divided by 255, and the ground truth is
    composited on white in float, ``gt * matte + (1 - matte)`` (no matte: opaque). Full frame;
    L2 = MSE, L1 = MAE, PSNR = 20 log10(1/(RMSE + 1e-8)), SSIM Gaussian 11 / sigma 1.5 valid computed
    as the script computes it, in float32 with its rounding (:func:`metrics.image.ssim_pytorch_metrics`),
    LPIPS alex with ``normalize=True``. (PointAvatar also optimises the tracking against the test images
    before scoring; that advantage lives in its renders, not in this protocol.)
    """

    id: str = "pointavatar"
    version: int = 3
    resolution: int | None = 512
    accepts_mask: bool = False

    def prepare_gt(self, gt, mask=None, landmarks=None, device="cpu") -> PreparedTruth:
        if mask is not None:
            raise CabenchError("protocol 'pointavatar' evaluates the full frame as PointAvatar's default pass does; drop --mask")
        loaded = _load_as_script(_stored(gt), self.resolution)
        matte = _matte(gt)
        if matte is not None:
            # the matte file holds matte * 255; loaded as the frames are
            matte = _load_as_script(np.repeat(matte[..., None] * np.float32(255), 3, axis=-1), self.resolution)
            loaded = loaded * matte + 1.0 * (1 - matte)
        return PreparedTruth(_float_tensor(loaded, torch.device(device)), None)

    def prepare_pred(self, pred, truth, device="cpu") -> torch.Tensor:
        import cv2

        kernel = np.ones((3, 3), np.uint8)
        opened = np.stack([cv2.dilate(cv2.erode(f, kernel, iterations=1), kernel, iterations=1) for f in _stored(pred)])
        return _float_tensor(_load_as_script(opened, self.resolution), torch.device(device))

    def kernels(self) -> dict[str, Kernel]:
        return {**super().kernels(),
                "psnr": lambda pred, gt, mask: image.psnr_with_epsilon(image.l2(pred, gt)),
                "ssim": lambda pred, gt, mask: image.ssim_pytorch_metrics(pred, gt)}


@dataclass(frozen=True)
class InstaProtocol(Protocol):
    """INSTA-pytorch's meters (``insta/utils.py``); the C++ INSTA repository ships no metric script.

    Native resolution; frames loaded as float32 / 255 and RGBA composited on white in float32,
    ``rgb * alpha + 1 * (1 - alpha)`` (``Trainer.eval_step``; the prediction too, as INSTA renders
    on a white background); PSNR = -10 log10(mean((pred-gt)^2)) per frame; LPIPS alex with
    ``normalize=True``. INSTA computes no SSIM, so this protocol reports SSIM as missing.
    """

    id: str = "insta"
    version: int = 2
    accepts_mask: bool = False
    unsupported: dict[str, str] = field(default_factory=lambda: {"ssim": "INSTA's evaluation computes no SSIM"})


@dataclass(frozen=True)
class NerfaceProtocol(Protocol):
    """NeRFace's ``nerf/metrics.py``.

    Full frame at native resolution, background included, no mask: frames as 3-channel files,
    ``np.array(PIL.Image.open(f)) / 255`` (the script cannot read RGBA frames, its LPIPS takes 3
    channels: a frame with alpha enters as the RGB file of its composite on white); L1 =
    mean |gt - pred|; PSNR by old scikit-image ``compare_psnr`` (data range 1 for non-negative
    floats); SSIM by old ``compare_ssim(multichannel=True)``: 7x7 uniform window, sample
    covariance, data range 2 (the float dtype range); LPIPS alex called without ``normalize``, so
    [0,1] images enter a network that expects [-1,1].
    """

    id: str = "nerface"
    accepts_mask: bool = False

    def prepare_gt(self, gt, mask=None, landmarks=None, device="cpu") -> PreparedTruth:
        self._check_mask(mask)
        return PreparedTruth(_to_tensor(_rgb(gt), torch.device(device)), None)

    def prepare_pred(self, pred, truth, device="cpu") -> torch.Tensor:
        return _to_tensor(_rgb(pred), torch.device(device))

    def kernels(self) -> dict[str, Kernel]:
        return {
            **super().kernels(),
            "ssim": lambda pred, gt, mask: image.ssim_uniform(pred, gt, win_size=7, data_range=2.0),
            "lpips": lambda pred, gt, mask, **options: image.lpips(pred, gt, normalize=False, **options),
        }


@dataclass(frozen=True)
class NhaProtocol(Protocol):
    """Neural Head Avatars' ``nha/evaluation/metrics.py`` / ``eval_suite.py``.

    Images in [-1,1]; the ground truth's background filled white with its matte in float
    (``fill_tensor_background``: ``rgb * mask + 1 * (1 - mask)``; a prediction with alpha alike);
    L1 and L2 are per-image means in [-1,1] units (so L2 is 4x the [0,1] MSE and L1 2x the MAE);
    PSNR = 20 log10(2 / sqrt(MSE in [-1,1])), equal to PSNR on [0,1]; the "SSIM" column is
    MS-SSIM (``pytorch_msssim.ms_ssim``, data range 1, after mapping back to [0,1]); LPIPS alex on
    [-1,1] input.
    """

    id: str = "nha"
    version: int = 2
    accepts_mask: bool = False

    def input_problem(self, metric, size, landmarks, mask):
        smallest = image.ms_ssim_smallest_side()
        if metric == "ssim" and min(size) <= smallest:
            return (f"protocol 'nha': its ssim is MS-SSIM, which needs frames larger than {smallest} px on each side "
                    f"(these are {size[1]}x{size[0]}); evaluate ssim under another protocol")
        return super().input_problem(metric, size, landmarks, mask)

    def kernels(self) -> dict[str, Kernel]:
        return {
            **super().kernels(),
            "l1": lambda pred, gt, mask: image.l1(2 * pred - 1, 2 * gt - 1),
            "l2": lambda pred, gt, mask: image.l2(2 * pred - 1, 2 * gt - 1),
            "psnr": lambda pred, gt, mask: 20.0 * torch.log10(2.0 / torch.sqrt(image.l2(2 * pred - 1, 2 * gt - 1))),
            "ssim": lambda pred, gt, mask: image.ms_ssim(pred, gt, data_range=1.0),
        }


@dataclass(frozen=True)
class PytorchFidProtocol(Protocol):
    """pytorch-fid's ``python -m pytorch_fid`` (set-level FID/KID; see :mod:`metrics.setlevel`).

    Frames as its loader reads image files, ``PIL.Image.open(path).convert('RGB')``: the colour
    channels as stored, an RGBA file's alpha dropped (not composited), ``x / 255`` in float32; the
    full frame (no mask). Resizing to 299 and scaling to [-1, 1] belong to its network's input step
    (:func:`metrics.fid_inputs.resize_pytorch_fid`). Per-frame image metrics are not part of it;
    per-frame metrics that need no ground truth comparison (``cpbd``) see these frames.
    """

    id: str = "pytorch-fid"
    version: int = 1
    accepts_mask: bool = False
    unsupported: dict[str, str] = field(default_factory=lambda: dict.fromkeys(
        FRAME_METRICS, "pytorch-fid computes FID only; use --protocol canonical (or a compatibility protocol) for it"))

    def prepare_gt(self, gt, mask=None, landmarks=None, device="cpu") -> PreparedTruth:
        self._check_mask(mask)
        return PreparedTruth(_to_tensor(_stored(gt), torch.device(device)), None)

    def prepare_pred(self, pred, truth, device="cpu") -> torch.Tensor:
        return _to_tensor(_stored(pred), torch.device(device))


def _set_only(implementation: str, computes: str = "FID/KID") -> Callable[[], dict[str, str]]:
    return lambda: dict.fromkeys(FRAME_METRICS, f"{implementation} computes {computes} only; use --protocol canonical "
                                                "(or a compatibility protocol) for it")


@dataclass(frozen=True)
class CleanFidProtocol(PytorchFidProtocol):
    """clean-fid's ``compute_fid`` / ``compute_kid`` of two folders, mode ``clean`` (set-level FID/KID).

    Frames as its ``ResizeDataset`` reads them, ``PIL.Image.open(path).convert('RGB')`` (alpha dropped);
    each channel resized as a float32 PIL image by PIL's antialiasing bicubic, before any
    quantisation; NVIDIA's TorchScript Inception (:mod:`metrics.fid_inputs`).
    """

    id: str = "clean-fid"
    unsupported: dict[str, str] = field(default_factory=_set_only("clean-fid"))


@dataclass(frozen=True)
class CleanFidLegacyPytorchProtocol(CleanFidProtocol):
    """clean-fid's mode ``legacy_pytorch``: pytorch-fid's network and bilinear resize, on 0-255 values."""

    id: str = "clean-fid-legacy-pytorch"


@dataclass(frozen=True)
class CleanFidLegacyTensorflowProtocol(CleanFidProtocol):
    """clean-fid's mode ``legacy_tensorflow``: NVIDIA's TorchScript with its TensorFlow-1 bilinear resize inside."""

    id: str = "clean-fid-legacy-tensorflow"


@dataclass(frozen=True)
class TorchFidelityProtocol(PytorchFidProtocol):
    """torch-fidelity's ``calculate_metrics(fid=True, kid=True)`` with its ``inception-v3-compat``
    extractor (what torchmetrics' FID and KID use).

    Frames as its ``ImagesPathDataset`` reads them, ``PIL.Image.open(path).convert('RGB')`` (alpha
    dropped), as uint8; TensorFlow 1's bilinear resize of their float32 values, ``(x - 128) / 128``
    (:mod:`metrics.fid_inputs`); KID with its defaults (100 subsets, rng_seed 2020).
    """

    id: str = "torch-fidelity"
    unsupported: dict[str, str] = field(default_factory=_set_only("torch-fidelity"))


@dataclass(frozen=True)
class VideoGPTProtocol(PytorchFidProtocol):
    """VideoGPT's FVD (``videogpt/fvd/fvd.py``, which TATS copies): 16-frame clips of the frames as stored.

    Frames as uint8 RGB (alpha dropped), ``x / 255`` in float32, the full frame (no mask); the short
    side resized to 224 (bilinear), a centre crop, ``2x - 1`` and its I3D state dict
    (:mod:`metrics.fvd_inputs`, :mod:`metrics.fvd`).
    """

    id: str = "videogpt"
    unsupported: dict[str, str] = field(default_factory=_set_only("videogpt", "FVD"))


@dataclass(frozen=True)
class StyleganVProtocol(PytorchFidProtocol):
    """StyleGAN-V's FVD (``src/metrics/frechet_video_distance.py``) and FID (StyleGAN2-ADA's
    ``frechet_inception_distance.py``: NVIDIA's TorchScript Inception with its own resize, biased covariances,
    :mod:`metrics.fid_inputs`); FVD on 16-frame clips of the frames as stored.

    Frames as uint8 RGB (alpha dropped), the full frame; its TorchScript I3D's ``rescale`` and
    ``resize`` (to 224 x 224, aspect not kept), biased covariances (:mod:`metrics.fvd_inputs`).
    """

    id: str = "stylegan-v"
    unsupported: dict[str, str] = field(default_factory=_set_only("stylegan-v", "FID and FVD"))


PROTOCOLS: Registry[Protocol] = Registry("protocol")
for _protocol in (Protocol(), IMavatarProtocol(), PointAvatarProtocol(), InstaProtocol(), NerfaceProtocol(), NhaProtocol(),
                  PytorchFidProtocol(), CleanFidProtocol(), CleanFidLegacyPytorchProtocol(),
                  CleanFidLegacyTensorflowProtocol(), TorchFidelityProtocol(), VideoGPTProtocol(), StyleganVProtocol()):
    PROTOCOLS.register(_protocol.id, _protocol)


def get_protocol(name: str | Protocol) -> Protocol:
    """The protocol called ``name``; an unknown name is an error naming the closest and listing the known ones."""
    if isinstance(name, Protocol):
        return name
    return PROTOCOLS.get(name)
