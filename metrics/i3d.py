"""The FVD network: I3D (Inception-v1 inflated to 3D, Kinetics-400; Carreira & Zisserman 2017), defined here.

Both published FVD implementations run DeepMind's I3D (the network TensorFlow's original FVD code
loads from TF-Hub, ``i3d-kinetics-400``), converted to PyTorch in two different files:

- VideoGPT (and TATS, which copies its ``fvd`` package): ``i3d_pretrained_400.pt``, the state dict
  of its ``InceptionI3d`` (piergiaj/pytorch-i3d's layout): per convolution a ``Unit3D`` holding
  ``conv3d`` (no bias) and ``bn`` (``BatchNorm3d``, eps 1e-5 in VideoGPT's copy, with a scale);
  inception blocks with branches ``b0``, ``b1a``/``b1b``, ``b2a``/``b2b`` and a 3x3x3 max pool
  before ``b3b``; the classifier ``logits`` a 1x1x1 convolution with a bias. This module uses those
  names (``Conv3d_1a_7x7.conv3d.weight``, ``Mixed_4b.b1b.bn.running_var``, ``logits.conv3d.bias``,
  ...), so VideoGPT's file loads as it is (:func:`videogpt_state`).
- StyleGAN-V: ``i3d_torchscript.pt``, a TorchScript module called as
  ``detector(x, rescale=True, resize=True, return_features=True)``. What is public about it, and what
  :func:`torchscript_state` assumes, is in the ``stylegan-v`` notes of :mod:`metrics.fvd_inputs`.
  Its tensors are read by order and shape (``torch.jit.load`` runs no Python code): the 5-D tensors
  are the 58 convolutions; the one followed by a bias and no batch norm is the classifier (wherever
  it is registered: VideoGPT's ``InceptionI3d`` registers ``logits`` first), the others are the 57
  convolutions in the order of the blocks here (each checked by shape, which pins most of them: the
  branches of one block differ in channels or kernel), each followed, under its module, by its batch
  norm's 1-D tensors (recognised by name: ``running_mean``/``mean``/``moving_mean``,
  ``running_var``/``var``/``moving_variance``, ``bias``/``beta``, optionally ``weight``/``gamma``/``scale``;
  without a scale, 1). Every tensor of the file must find its place.

Every convolution and max pool pads like TensorFlow's ``SAME`` for the input it gets (computed per
call: total padding ``max(k - s, 0)`` when the size divides by the stride, else ``max(k - size % s, 0)``,
the smaller half first), with zeros: every max pool follows a ReLU, so zero padding equals
TensorFlow's. The head: a 2x7x7 average pool (stride 1, no padding), the 1x1x1 classifier, the
spatial axes squeezed and the logits averaged over time: for a 16 x 224 x 224 clip, one 400-d
vector, the logits before the softmax, which both implementations take as the FVD features.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from metrics.errors import WeightsUnusableError
from metrics.weights import compare_state, from_manifest, load_checkpoint, state_dict_of

FEATURE_DIM = 400
CLIP_LENGTH = 16
SIZE = 224
VIDEOGPT_EPS = 1e-5  # VideoGPT's pytorch_i3d.Unit3D: BatchNorm3d(eps=1e-5)
TF_EPS = 1e-3  # DeepMind's kinetics-i3d (Sonnet BatchNorm's default); assumed for StyleGAN-V's file

Triple = tuple[int, int, int]


def same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow ``SAME`` padding of one axis: (before, after), the smaller half before."""
    total = max(kernel - stride, 0) if size % stride == 0 else max(kernel - size % stride, 0)
    return total // 2, total - total // 2


def pad_same(x: torch.Tensor, kernel: Triple, stride: Triple) -> torch.Tensor:
    """Zero-pad (N,C,T,H,W) for a ``SAME`` window of ``kernel`` / ``stride`` (T, H, W)."""
    pads: list[int] = []
    for axis in (2, 1, 0):  # F.pad lists the last axis first
        pads.extend(same_padding(x.shape[2 + axis], kernel[axis], stride[axis]))
    return F.pad(x, pads)


class Unit3D(nn.Module):
    """Convolution with ``SAME`` padding, then (optionally) batch norm and ReLU; ``conv3d`` / ``bn``."""

    def __init__(self, in_channels: int, out_channels: int, kernel: Triple = (1, 1, 1), stride: Triple = (1, 1, 1),
                 norm: bool = True, relu: bool = True, bias: bool = False, eps: float = VIDEOGPT_EPS):
        super().__init__()
        self.kernel, self.stride, self.relu = kernel, stride, relu
        self.conv3d = nn.Conv3d(in_channels, out_channels, kernel, stride=stride, padding=0, bias=bias)
        self.bn = nn.BatchNorm3d(out_channels, eps=eps) if norm else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv3d(pad_same(x, self.kernel, self.stride))
        if self.bn is not None:
            x = self.bn(x)
        return F.relu(x) if self.relu else x


def max_pool_same(x: torch.Tensor, kernel: Triple, stride: Triple) -> torch.Tensor:
    """Max pool with ``SAME`` zero padding (inputs are ReLU outputs, so zeros never win wrongly)."""
    return F.max_pool3d(pad_same(x, kernel, stride), kernel, stride)


class InceptionBlock(nn.Module):
    """Inception-v1 block: 1x1; 1x1 then 3x3x3; 1x1 then 3x3x3; 3x3x3 max pool then 1x1 (concatenated)."""

    def __init__(self, in_channels: int, widths: tuple[int, int, int, int, int, int], eps: float):
        super().__init__()
        self.b0 = Unit3D(in_channels, widths[0], eps=eps)
        self.b1a = Unit3D(in_channels, widths[1], eps=eps)
        self.b1b = Unit3D(widths[1], widths[2], (3, 3, 3), eps=eps)
        self.b2a = Unit3D(in_channels, widths[3], eps=eps)
        self.b2b = Unit3D(widths[3], widths[4], (3, 3, 3), eps=eps)
        self.b3b = Unit3D(in_channels, widths[5], eps=eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = max_pool_same(x, (3, 3, 3), (1, 1, 1))
        return torch.cat([self.b0(x), self.b1b(self.b1a(x)), self.b2b(self.b2a(x)), self.b3b(pooled)], 1)


BLOCKS: dict[str, tuple[int, tuple[int, int, int, int, int, int]]] = {
    "Mixed_3b": (192, (64, 96, 128, 16, 32, 32)),
    "Mixed_3c": (256, (128, 128, 192, 32, 96, 64)),
    "Mixed_4b": (480, (192, 96, 208, 16, 48, 64)),
    "Mixed_4c": (512, (160, 112, 224, 24, 64, 64)),
    "Mixed_4d": (512, (128, 128, 256, 24, 64, 64)),
    "Mixed_4e": (512, (112, 144, 288, 32, 64, 64)),
    "Mixed_4f": (528, (256, 160, 320, 32, 128, 128)),
    "Mixed_5b": (832, (256, 160, 320, 32, 128, 128)),
    "Mixed_5c": (832, (384, 192, 384, 48, 128, 128)),
}


class I3D(nn.Module):
    """I3D up to its Kinetics-400 logits. ``forward(x)``: x (N,3,T,224,224) in [-1,1] (T = 16 in FVD)
    -> (N,400) logits before the softmax, averaged over the time positions the head leaves.

    ``eps``: the batch norms' epsilon (VideoGPT's 1e-5, or TensorFlow's 1e-3).
    """

    def __init__(self, eps: float = VIDEOGPT_EPS, classes: int = FEATURE_DIM):
        super().__init__()
        self.Conv3d_1a_7x7 = Unit3D(3, 64, (7, 7, 7), (2, 2, 2), eps=eps)
        self.Conv3d_2b_1x1 = Unit3D(64, 64, eps=eps)
        self.Conv3d_2c_3x3 = Unit3D(64, 192, (3, 3, 3), eps=eps)
        for name, (channels, widths) in BLOCKS.items():
            setattr(self, name, InceptionBlock(channels, widths, eps))
        self.logits = Unit3D(1024, classes, norm=False, relu=False, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = max_pool_same(self.Conv3d_1a_7x7(x), (1, 3, 3), (1, 2, 2))
        x = max_pool_same(self.Conv3d_2c_3x3(self.Conv3d_2b_1x1(x)), (1, 3, 3), (1, 2, 2))
        x = self.Mixed_3c(self.Mixed_3b(x))
        x = max_pool_same(x, (3, 3, 3), (2, 2, 2))
        for name in ("Mixed_4b", "Mixed_4c", "Mixed_4d", "Mixed_4e", "Mixed_4f"):
            x = getattr(self, name)(x)
        x = max_pool_same(x, (2, 2, 2), (2, 2, 2))
        x = self.Mixed_5c(self.Mixed_5b(x))
        x = self.logits(F.avg_pool3d(x, (2, 7, 7), stride=1))
        if x.shape[3] != 1 or x.shape[4] != 1:
            raise ValueError(f"I3D's head needs 224 x 224 frames (7 x 7 after the network), got {tuple(x.shape[3:])}")
        return x[:, :, :, 0, 0].mean(dim=2)


VIDEOGPT_WEIGHTS = from_manifest("fvd-i3d-videogpt", check=lambda path: videogpt_state(path) and None)
STYLEGAN_V_WEIGHTS = from_manifest("fvd-i3d-stylegan-v", check=lambda path: torchscript_state(path) and None)


def _expected_state() -> dict[str, torch.Tensor]:
    with torch.device("meta"):
        state = I3D().state_dict()
    return {key: value for key, value in state.items() if not key.endswith("num_batches_tracked")}


def videogpt_state(path: str | Path) -> dict[str, torch.Tensor]:
    """The I3D state dict in ``path`` (VideoGPT's ``i3d_pretrained_400.pt``: its ``InceptionI3d``'s state
    dict, which has this module's names), checked key by key and shape by shape.

    Raises:
        WeightsUnusableError: one line naming the file and what does not fit.
    """
    state = state_dict_of(load_checkpoint(path), path)
    state = {key: value for key, value in state.items() if not key.endswith("num_batches_tracked")}
    compare_state(state, _expected_state(), path, "VideoGPT's I3D (i3d_pretrained_400.pt)")
    return state


_NORM_NAMES = {"running_mean": "running_mean", "mean": "running_mean", "moving_mean": "running_mean",
               "running_var": "running_var", "var": "running_var", "moving_variance": "running_var",
               "bias": "bias", "beta": "bias", "b": "bias", "weight": "weight", "gamma": "weight", "scale": "weight"}


def torchscript_state(path: str | Path) -> dict[str, torch.Tensor]:
    """The I3D state dict (this module's names) of StyleGAN-V's TorchScript ``path`` (see the module
    docstring): the classifier as the one convolution with a bias and no batch norm, the others by order
    and shape, each convolution's batch-norm tensors by name; every tensor of the file is used exactly once.

    Raises:
        WeightsUnusableError: one line naming the file and what does not fit.
    """
    try:
        module = torch.jit.load(str(path), map_location="cpu")
    except (RuntimeError, ValueError, OSError) as error:
        raise WeightsUnusableError(path, f"not a TorchScript file ({str(error).splitlines()[0][:120]})") from None
    theirs = dict(module.state_dict())
    theirs = {key: value for key, value in theirs.items() if not key.endswith("num_batches_tracked")}
    expected = _expected_state()
    ours = [key[: -len(".conv3d.weight")] for key in expected if key.endswith(".conv3d.weight")]
    convs = [key for key, value in theirs.items() if value.ndim == 5]
    if len(convs) != len(ours):
        raise WeightsUnusableError(path, f"{len(convs)} 3D convolutions, not I3D's {len(ours)}")
    keys = list(theirs)
    groups: dict[str, list[str]] = {}  # each convolution's 1-D tensors: those after it, before the next, under its module
    for index, conv in enumerate(convs):
        stop = keys.index(convs[index + 1]) if index + 1 < len(convs) else len(keys)
        prefix = conv.rsplit(".", 2)[0] + "." if conv.count(".") >= 2 else ""
        groups[conv] = [key for key in keys[keys.index(conv) + 1: stop]
                        if theirs[key].ndim == 1 and key.startswith(prefix) and key.rsplit(".", 1)[-1] in _NORM_NAMES]
    heads = [conv for conv in convs if len(groups[conv]) == 1 and _NORM_NAMES[groups[conv][0].rsplit(".", 1)[-1]] == "bias"]
    if len(heads) != 1:
        raise WeightsUnusableError(path, f"{len(heads)} convolutions with a bias and no batch norm, not I3D's one classifier")
    state: dict[str, torch.Tensor] = {"logits.conv3d.weight": theirs[heads[0]], "logits.conv3d.bias": theirs[groups[heads[0]][0]]}
    used: set[str] = {heads[0], groups[heads[0]][0]}
    for conv, unit in zip([conv for conv in convs if conv != heads[0]], [unit for unit in ours if unit != "logits"]):
        state[f"{unit}.conv3d.weight"] = theirs[conv]
        used.add(conv)
        norm = {_NORM_NAMES[key.rsplit(".", 1)[-1]]: key for key in groups[conv]}
        if len(norm) != len(groups[conv]) or not {"running_mean", "running_var", "bias"} <= set(norm):
            raise WeightsUnusableError(path, f"convolution {conv!r} is not followed by one batch norm (mean, variance, "
                                             f"shift, optionally a scale): {[k.rsplit('.', 1)[-1] for k in groups[conv]]}")
        for name, key in norm.items():
            state[f"{unit}.bn.{name}"] = theirs[key]
            used.add(key)
        state.setdefault(f"{unit}.bn.weight", torch.ones_like(theirs[norm["bias"]]))
    left = sorted(set(theirs) - used)
    if left:
        raise WeightsUnusableError(path, f"{len(left)} tensors of the file have no place in I3D: {', '.join(left[:4])}")
    compare_state(state, expected, path, "StyleGAN-V's I3D TorchScript (i3d_torchscript.pt)")
    return state


def load_i3d(path: str | Path, device: str | torch.device = "cpu", format: str = "videogpt") -> I3D:
    """The network with the weights of ``path`` (``format`` ``videogpt``: VideoGPT's state dict, batch-norm
    eps 1e-5; ``torchscript``: StyleGAN-V's TorchScript, eps 1e-3), in evaluation mode, on ``device``
    (cached per file)."""
    path = Path(path).resolve()
    stat = path.stat()
    return _load(str(path), str(torch.device(device)), format, stat.st_size, stat.st_mtime_ns)


@lru_cache(maxsize=2)
def _load(path: str, device: str, format: str, size: int, mtime_ns: int) -> I3D:
    model = I3D(eps=TF_EPS if format == "torchscript" else VIDEOGPT_EPS)
    state = torchscript_state(path) if format == "torchscript" else videogpt_state(path)
    missing, unexpected = model.load_state_dict(state, strict=False)
    if unexpected or any(not key.endswith("num_batches_tracked") for key in missing):
        raise WeightsUnusableError(path, "the state dict does not fit I3D")  # checked above
    return model.eval().requires_grad_(False).to(device)
