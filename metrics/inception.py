"""The FID Inception network (TensorFlow's 2015-12-05 Inception v3, "pool_3"), defined here.

Every published FID starts from the same network: the Inception v3 graph TensorFlow's original
FID code loads (``inception-2015-12-05``), ported to PyTorch by pytorch-fid
(``pt_inception-2015-12-05-6726825d.pth``). It differs from torchvision's Inception v3 in three
places, which decide the features: the 3x3 average pools of the A, C and first E blocks exclude
the zero padding from their average (TensorFlow's ``SAME`` average pool), the last E block pools
with a 3x3 *max* pool, and the classifier has 1008 outputs. The module below is written from
that description with the parameter names of the published file (torchvision's names:
``Conv2d_1a_3x3.conv.weight``, ``Mixed_5b.branch1x1.bn.running_mean``, ...), so the file loads
as it is. Its forward takes images already resized and scaled to [-1, 1]; resizing and scaling
are the protocol's job (:mod:`metrics.fid_inputs`), because that is where the published
implementations differ.

The same network is published in a second format: NVIDIA's TorchScript ``inception-2015-12-05.pt``
(StyleGAN2-ADA's metrics, which clean-fid loads). Its ``layers`` hold one module per TensorFlow
convolution node (``conv``, ``conv_1``, ..., ``mixed``, ``mixed_1``, ..., ``mixed_10``, with
``tower``/``tower_1``/``tower_2`` branches), each with ``weight``, ``beta``, ``mean`` and ``var``
(batch norm without a scale: TensorFlow's graph has none), and ``output`` the classifier; its
branches and convolutions come in the order of the blocks here. :func:`nvidia_state` reads such a
file (``torch.jit.load``, which runs no Python code) into this network's names by that order, checking
every suffix and shape, with the batch-norm scale 1.

Batch-norm layers use eps = 0.001 (TensorFlow's); every convolution has no bias.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from metrics.errors import WeightsUnusableError
from metrics.weights import compare_state, from_manifest, load_checkpoint, state_dict_of

FEATURE_DIM = 2048
CLASSES = 1008


class ConvBN(nn.Module):
    """Convolution (no bias), batch norm (eps 0.001), ReLU: one TensorFlow ``conv`` node."""

    def __init__(self, in_channels: int, out_channels: int, kernel: int | tuple[int, int], stride: int = 1,
                 padding: int | tuple[int, int] = 0):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel, stride=stride, padding=padding, bias=False)
        self.bn = nn.BatchNorm2d(out_channels, eps=0.001)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(x)), inplace=True)


def _avg_pool_same(x: torch.Tensor) -> torch.Tensor:
    """TensorFlow's 3x3 / stride 1 ``SAME`` average pool: the padding is not counted in the mean."""
    return F.avg_pool2d(x, kernel_size=3, stride=1, padding=1, count_include_pad=False)


def _max_pool_same(x: torch.Tensor) -> torch.Tensor:
    return F.max_pool2d(x, kernel_size=3, stride=1, padding=1)


class BlockA(nn.Module):
    """35x35 block: 1x1, 5x5, double 3x3 and pooled 1x1 branches (64 + 64 + 96 + ``pool_features``)."""

    def __init__(self, in_channels: int, pool_features: int):
        super().__init__()
        self.branch1x1 = ConvBN(in_channels, 64, 1)
        self.branch5x5_1 = ConvBN(in_channels, 48, 1)
        self.branch5x5_2 = ConvBN(48, 64, 5, padding=2)
        self.branch3x3dbl_1 = ConvBN(in_channels, 64, 1)
        self.branch3x3dbl_2 = ConvBN(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = ConvBN(96, 96, 3, padding=1)
        self.branch_pool = ConvBN(in_channels, pool_features, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([
            self.branch1x1(x),
            self.branch5x5_2(self.branch5x5_1(x)),
            self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x))),
            self.branch_pool(_avg_pool_same(x)),
        ], 1)


class BlockB(nn.Module):
    """35 -> 17 reduction: strided 3x3, strided double 3x3, and a 3x3 / 2 max pool."""

    def __init__(self, in_channels: int):
        super().__init__()
        self.branch3x3 = ConvBN(in_channels, 384, 3, stride=2)
        self.branch3x3dbl_1 = ConvBN(in_channels, 64, 1)
        self.branch3x3dbl_2 = ConvBN(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = ConvBN(96, 96, 3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([
            self.branch3x3(x),
            self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x))),
            F.max_pool2d(x, kernel_size=3, stride=2),
        ], 1)


class BlockC(nn.Module):
    """17x17 block with factorised 7x7 convolutions (``width`` channels inside), 4 x 192 out."""

    def __init__(self, in_channels: int, width: int):
        super().__init__()
        row, col = ((1, 7), (0, 3)), ((7, 1), (3, 0))  # (kernel, padding) of a 1x7 and a 7x1 convolution
        self.branch1x1 = ConvBN(in_channels, 192, 1)
        self.branch7x7_1 = ConvBN(in_channels, width, 1)
        self.branch7x7_2 = ConvBN(width, width, row[0], padding=row[1])
        self.branch7x7_3 = ConvBN(width, 192, col[0], padding=col[1])
        self.branch7x7dbl_1 = ConvBN(in_channels, width, 1)
        self.branch7x7dbl_2 = ConvBN(width, width, col[0], padding=col[1])
        self.branch7x7dbl_3 = ConvBN(width, width, row[0], padding=row[1])
        self.branch7x7dbl_4 = ConvBN(width, width, col[0], padding=col[1])
        self.branch7x7dbl_5 = ConvBN(width, 192, row[0], padding=row[1])
        self.branch_pool = ConvBN(in_channels, 192, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        double = x
        for layer in (self.branch7x7dbl_1, self.branch7x7dbl_2, self.branch7x7dbl_3, self.branch7x7dbl_4,
                      self.branch7x7dbl_5):
            double = layer(double)
        return torch.cat([
            self.branch1x1(x),
            self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x))),
            double,
            self.branch_pool(_avg_pool_same(x)),
        ], 1)


class BlockD(nn.Module):
    """17 -> 8 reduction: 1x1 then strided 3x3; 1x1, 1x7, 7x1, strided 3x3; 3x3 / 2 max pool."""

    def __init__(self, in_channels: int):
        super().__init__()
        self.branch3x3_1 = ConvBN(in_channels, 192, 1)
        self.branch3x3_2 = ConvBN(192, 320, 3, stride=2)
        self.branch7x7x3_1 = ConvBN(in_channels, 192, 1)
        self.branch7x7x3_2 = ConvBN(192, 192, (1, 7), padding=(0, 3))
        self.branch7x7x3_3 = ConvBN(192, 192, (7, 1), padding=(3, 0))
        self.branch7x7x3_4 = ConvBN(192, 192, 3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        seven = self.branch7x7x3_4(self.branch7x7x3_3(self.branch7x7x3_2(self.branch7x7x3_1(x))))
        return torch.cat([self.branch3x3_2(self.branch3x3_1(x)), seven, F.max_pool2d(x, kernel_size=3, stride=2)], 1)


class BlockE(nn.Module):
    """8x8 block with split 1x3 / 3x1 outputs (320 + 768 + 768 + 192 = 2048 channels).

    ``max_pool``: the pool branch pools with a 3x3 max pool (the FID graph's last block) instead
    of the padding-excluding average pool.
    """

    def __init__(self, in_channels: int, max_pool: bool):
        super().__init__()
        self.max_pool = max_pool
        self.branch1x1 = ConvBN(in_channels, 320, 1)
        self.branch3x3_1 = ConvBN(in_channels, 384, 1)
        self.branch3x3_2a = ConvBN(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3_2b = ConvBN(384, 384, (3, 1), padding=(1, 0))
        self.branch3x3dbl_1 = ConvBN(in_channels, 448, 1)
        self.branch3x3dbl_2 = ConvBN(448, 384, 3, padding=1)
        self.branch3x3dbl_3a = ConvBN(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3dbl_3b = ConvBN(384, 384, (3, 1), padding=(1, 0))
        self.branch_pool = ConvBN(in_channels, 192, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        three = self.branch3x3_1(x)
        double = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        pooled = _max_pool_same(x) if self.max_pool else _avg_pool_same(x)
        return torch.cat([
            self.branch1x1(x),
            self.branch3x3_2a(three), self.branch3x3_2b(three),
            self.branch3x3dbl_3a(double), self.branch3x3dbl_3b(double),
            self.branch_pool(pooled),
        ], 1)


class FIDInception(nn.Module):
    """The FID Inception v3 up to its 2048-d average pool ("pool_3"), plus the 1008-way classifier.

    ``forward(x)``: x (N,3,299,299) float in [-1,1] -> (N,2048) pool_3 features (the spatial mean of
    the last block, whatever the input size). ``logits(features)``: the classifier's output.
    """

    def __init__(self):
        super().__init__()
        self.Conv2d_1a_3x3 = ConvBN(3, 32, 3, stride=2)
        self.Conv2d_2a_3x3 = ConvBN(32, 32, 3)
        self.Conv2d_2b_3x3 = ConvBN(32, 64, 3, padding=1)
        self.Conv2d_3b_1x1 = ConvBN(64, 80, 1)
        self.Conv2d_4a_3x3 = ConvBN(80, 192, 3)
        self.Mixed_5b = BlockA(192, 32)
        self.Mixed_5c = BlockA(256, 64)
        self.Mixed_5d = BlockA(288, 64)
        self.Mixed_6a = BlockB(288)
        self.Mixed_6b = BlockC(768, 128)
        self.Mixed_6c = BlockC(768, 160)
        self.Mixed_6d = BlockC(768, 160)
        self.Mixed_6e = BlockC(768, 192)
        self.Mixed_7a = BlockD(768)
        self.Mixed_7b = BlockE(1280, max_pool=False)
        self.Mixed_7c = BlockE(2048, max_pool=True)
        self.fc = nn.Linear(FEATURE_DIM, CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x)))
        x = F.max_pool2d(x, kernel_size=3, stride=2)
        x = self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(x))
        x = F.max_pool2d(x, kernel_size=3, stride=2)
        for block in (self.Mixed_5b, self.Mixed_5c, self.Mixed_5d, self.Mixed_6a, self.Mixed_6b, self.Mixed_6c,
                      self.Mixed_6d, self.Mixed_6e, self.Mixed_7a, self.Mixed_7b, self.Mixed_7c):
            x = block(x)
        return F.adaptive_avg_pool2d(x, (1, 1)).flatten(1)

    def logits(self, features: torch.Tensor) -> torch.Tensor:
        return self.fc(features)


PYTORCH_FID_WEIGHTS = from_manifest("fid-inception-pytorch-fid", check=lambda path: inception_state(path) and None)
TORCH_FIDELITY_WEIGHTS = from_manifest("fid-inception-torch-fidelity", check=lambda path: inception_state(path) and None)
CLEAN_FID_WEIGHTS = from_manifest("fid-inception-clean-fid", check=lambda path: nvidia_state(path) and None)
NVIDIA_SUFFIXES = ("weight", "beta", "mean", "var")  # one TensorFlow convolution node: conv, bn shift, bn statistics


def _expected_state() -> dict[str, torch.Tensor]:
    with torch.device("meta"):
        state = FIDInception().state_dict()
    return {key: value for key, value in state.items() if not key.endswith("num_batches_tracked")}


def inception_state(path: str | Path) -> dict[str, torch.Tensor]:
    """The FID Inception state dict in ``path`` (pytorch-fid's file format: the state dict of the
    whole network, classifier included), checked key by key and shape by shape.

    ``num_batches_tracked`` entries (written by current PyTorch, absent from the published file)
    are accepted and dropped: they do not take part in an evaluation-mode forward.

    Raises:
        WeightsUnusableError: one line naming the file and what does not fit.
    """
    state = state_dict_of(load_checkpoint(path), path)
    state = {key: value for key, value in state.items() if not key.endswith("num_batches_tracked")}
    expected = _expected_state()
    compare_state(state, expected, path, "the FID Inception v3 (pytorch-fid's pt_inception file)")
    return state


def nvidia_state(path: str | Path) -> dict[str, torch.Tensor]:
    """The FID Inception state dict (this module's names) of NVIDIA's TorchScript file ``path`` (see the
    module docstring): its convolution nodes in order onto this network's, each node's four tensors
    checked by suffix and shape, the classifier from ``output``.

    Raises:
        WeightsUnusableError: one line naming the file and what does not fit.
    """
    try:
        loaded = torch.jit.load(str(path), map_location="cpu").state_dict()
    except (RuntimeError, ValueError, OSError) as error:
        raise WeightsUnusableError(path, f"not a TorchScript file ({str(error).splitlines()[0][:120]})") from None
    theirs = {key: value for key, value in loaded.items() if key.startswith("layers.")}
    nodes = list(dict.fromkeys(key.rsplit(".", 1)[0] for key in theirs))
    expected = _expected_state()
    ours = list(dict.fromkeys(key.rsplit(".", 2)[0] for key in expected if key.endswith(".conv.weight")))
    if len(nodes) != len(ours) or "output.weight" not in loaded:
        raise WeightsUnusableError(path, f"{len(nodes)} convolution nodes and {'an' if 'output.weight' in loaded else 'no'} "
                                         f"output layer, not NVIDIA's FID Inception ({len(ours)} nodes and a classifier)")
    state = {f"fc.{key.split('.')[1]}": value for key, value in loaded.items() if key.startswith("output.")}
    for node, module in zip(nodes, ours):
        tensors = {key.rsplit(".", 1)[1]: value for key, value in theirs.items() if key.rsplit(".", 1)[0] == node}
        if set(tensors) != set(NVIDIA_SUFFIXES):
            raise WeightsUnusableError(path, f"node {node!r} holds {sorted(tensors)}, not {list(NVIDIA_SUFFIXES)}")
        state[f"{module}.conv.weight"] = tensors["weight"]
        state[f"{module}.bn.weight"] = torch.ones_like(tensors["beta"])
        state[f"{module}.bn.bias"] = tensors["beta"]
        state[f"{module}.bn.running_mean"] = tensors["mean"]
        state[f"{module}.bn.running_var"] = tensors["var"]
    compare_state(state, expected, path, "the FID Inception v3 (NVIDIA's TorchScript inception-2015-12-05.pt)")
    return state


def load_inception(path: str | Path, device: str | torch.device = "cpu", format: str = "state") -> FIDInception:
    """The network with the weights of ``path`` (``format`` ``state``: pytorch-fid's / torch-fidelity's
    state dict; ``nvidia``: NVIDIA's TorchScript), in evaluation mode, on ``device`` (cached per file)."""
    path = Path(path).resolve()
    stat = path.stat()
    return _load(str(path), str(torch.device(device)), format, stat.st_size, stat.st_mtime_ns)


@lru_cache(maxsize=2)
def _load(path: str, device: str, format: str, size: int, mtime_ns: int) -> FIDInception:
    model = FIDInception()
    state = nvidia_state(path) if format == "nvidia" else inception_state(path)
    missing, unexpected = model.load_state_dict(state, strict=False)
    if unexpected or any(not key.endswith("num_batches_tracked") for key in missing):
        raise WeightsUnusableError(path, "the state dict does not fit the FID Inception v3")  # checked above
    return model.eval().requires_grad_(False).to(device)
