"""dlib's face-recognition ResNet (``dlib_face_recognition_resnet_model_v1.dat``) run by torch.

Why: the dlib wheel computes this network without BLAS, about 70 ms of CPU per face; torch's
convolutions compute the same 128-d descriptor in a few milliseconds. The weights are read from
dlib's own model file, so the descriptors are dlib's (equal to float32 rounding: the tests compare
them with ``dlib.face_recognition_model_v1.compute_face_descriptor`` on real photos).

The network is dlib's ``anet_type`` of ``dnn_face_recognition_ex.cpp``: on a 150x150 RGB chip,
``(pixel - mean) / 256`` per channel; 7x7/2 convolution (32), affine, ReLU, 3x3/2 max pooling;
residual stages of 32 (3 blocks), 64 (1 down + 3), 128 (1 down + 2), 256 (1 down + 2, then 1
down); global average pooling and a 128-output linear layer without bias. A block is
conv 3x3 - affine - ReLU - conv 3x3 - affine, added to its input, then ReLU; a down block's first
convolution has stride 2 and no padding, and its input, average-pooled 2x2/2, is added with
dlib's ``add_prev`` rule: the two tensors aligned at the top-left corner, each zero outside itself.

The file is dlib's binary serialization of that network (``dlib/serialize.h``, ``dlib/dnn``):
read here field by field in the order dlib writes it, with every version tag, layer kind and
shape checked, so a file of another network is an error that says where it differs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from metrics.errors import InputError

CHIP_SIZE, CHIP_PADDING = 150, 0.25  # dlib's compute_face_descriptor: get_face_chip(image, shape, 150, 0.25)


@dataclass
class Layer:
    """One layer of the network: its kind (``con``, ``affine``, ``relu``, ``max_pool``,
    ``avg_pool``, ``add_prev``, ``tag``, ``skip``, ``fc``) and what dlib stored for it."""

    kind: str
    tag: int = 0
    tensors: dict[str, np.ndarray] = field(default_factory=dict)
    window: tuple[int, int] = (0, 0)
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int] = (0, 0)


def _ares() -> list[Layer]:
    """relu<add_prev1<affine<con<relu<affine<con<tag1<SUBNET>>>>>>>> (outermost first)."""
    return [Layer("relu"), Layer("add_prev", 1), Layer("affine"), Layer("con"), Layer("relu"), Layer("affine"),
            Layer("con"), Layer("tag", 1)]


def _ares_down() -> list[Layer]:
    """relu<add_prev2<avg_pool<2,2,2,2,skip1<tag2<affine<con<relu<affine<con<tag1<SUBNET>>>>>>>>>>>."""
    return [Layer("relu"), Layer("add_prev", 2), Layer("avg_pool"), Layer("skip", 1), Layer("tag", 2), Layer("affine"),
            Layer("con"), Layer("relu"), Layer("affine"), Layer("con"), Layer("tag", 1)]


def anet_layers() -> list[Layer]:
    """The layers of dlib's ``anet_type`` below the loss, outermost (the output) first."""
    stages = [_ares_down(), _ares(), _ares(), _ares_down(), _ares(), _ares(), _ares_down(), _ares(), _ares(), _ares(),
              _ares_down(), _ares(), _ares(), _ares()]
    return [Layer("fc"), Layer("avg_pool")] + [layer for stage in stages for layer in stage] + [
        Layer("max_pool"), Layer("relu"), Layer("affine"), Layer("con")]


class _Reader:
    """dlib's serialization primitives over the bytes of a file."""

    def __init__(self, data: bytes, path: Path):
        self.data, self.offset, self.path = data, 0, path

    def fail(self, what: str) -> InputError:
        return InputError(f"{self.path}: not dlib's face-recognition ResNet ({what} at byte {self.offset})")

    def take(self, count: int) -> bytes:
        if self.offset + count > len(self.data):
            raise self.fail("the file ends early")
        chunk = self.data[self.offset : self.offset + count]
        self.offset += count
        return chunk

    def int(self) -> int:
        """An integer: one control byte (size in the low 4 bits, 0x80 = negative), then little-endian bytes."""
        control = self.take(1)[0]
        size = control & 0x0F
        if size == 0 or size > 8:
            raise self.fail(f"an integer of {size} bytes")
        value = int.from_bytes(self.take(size), "little")
        return -value if control & 0x80 else value

    def float(self) -> float:
        """A floating-point value: mantissa and base-2 exponent, two integers."""
        mantissa = self.int()
        return float(np.ldexp(float(mantissa), self.int()))

    def bool(self) -> bool:
        value = self.take(1)
        if value not in (b"0", b"1"):
            raise self.fail("a boolean")
        return value == b"1"

    def string(self) -> str:
        return self.take(self.int()).decode("latin-1")

    def version(self, *expected: str) -> str:
        found = self.string()
        if found not in expected:
            raise self.fail(f"{found!r} where {' or '.join(expected)} was expected")
        return found

    def number_version(self, low: int, high: int, what: str) -> int:
        found = self.int()
        if not low <= found <= high:
            raise self.fail(f"version {found} of {what}")
        return found

    def tensor(self) -> np.ndarray:
        """A tensor: version 2, four dimensions (num_samples, k, nr, nc), then little-endian float32s."""
        self.number_version(2, 2, "a tensor")
        shape = tuple(self.int() for _ in range(4))
        count = int(np.prod(shape))
        return np.frombuffer(self.take(4 * count), dtype="<f4").reshape(shape).astype(np.float32)

    def alias(self) -> tuple[int, int, int, int]:
        """An alias tensor: version 1 and four dimensions, the view of a layer's parameters."""
        self.number_version(1, 1, "an alias tensor")
        return tuple(self.int() for _ in range(4))


def _split(params: np.ndarray, *shapes: tuple[int, ...]) -> list[np.ndarray]:
    """Consecutive views of a layer's flat parameter tensor (dlib keeps them one after the other)."""
    flat, out, start = params.reshape(-1), [], 0
    for shape in shapes:
        size = int(np.prod(shape))
        out.append(flat[start : start + size].reshape(shape))
        start += size
    if start != flat.size:
        raise ValueError(f"parameters of {flat.size} values for views of {start}")
    return out


def _read_details(reader: _Reader, layer: Layer) -> None:
    """The fields dlib writes for one layer's details (``layers.h``), into ``layer``."""
    kind = layer.kind
    if kind == "con":
        version = reader.version("con_4", "con_5", "con_6")
        params = reader.tensor()
        reader.int()  # number of filters, also in the filters' shape
        window = (reader.int(), reader.int())
        layer.stride = (reader.int(), reader.int())
        layer.padding = (reader.int(), reader.int())
        filters, _ = reader.alias(), reader.alias()  # the filters' shape; the biases' follows from it
        for _ in range(4):
            reader.float()  # learning-rate and weight-decay multipliers
        use_bias = reader.bool() if version in ("con_5", "con_6") else True
        if version == "con_6":
            reader.bool()  # use_relu: a fused ReLU of dlib's CUDA path, off in this network
        if filters[2:] != window:
            raise reader.fail("a convolution whose filters do not match its window")
        weight, bias = _split(params, filters, (filters[0],) if use_bias else (0,))
        layer.tensors = {"weight": weight, "bias": bias}
    elif kind == "affine":
        version = reader.version("affine_", "affine_2")
        params = reader.tensor()
        gamma, beta = reader.alias(), reader.alias()
        reader.int()  # mode: per channel (the convolutional mode)
        if version == "affine_2" and reader.bool():
            raise reader.fail("a disabled affine layer")
        layer.tensors = dict(zip(("gamma", "beta"), _split(params, gamma, beta)))
    elif kind == "relu":
        if reader.version("relu_", "relu_2") == "relu_2" and reader.bool():
            raise reader.fail("a disabled ReLU")
    elif kind in ("max_pool", "avg_pool"):
        reader.version(f"{kind}_2")
        layer.window = (reader.int(), reader.int())
        layer.stride = (reader.int(), reader.int())
        layer.padding = (reader.int(), reader.int())
    elif kind == "add_prev":
        reader.version("add_prev_")
    elif kind == "fc":
        version = reader.version("fc_2", "fc_3")
        outputs, inputs = reader.int(), reader.int()
        params = reader.tensor()
        weights, _ = reader.alias(), reader.alias()
        if reader.int() != 1:  # fc_bias_mode: FC_NO_BIAS
            raise reader.fail("a fully connected layer with a bias")
        for _ in range(4):
            reader.float()
        if version == "fc_3":
            reader.bool()
        if weights[:2] != (inputs, outputs):
            raise reader.fail("a fully connected layer whose weights do not match its size")
        layer.tensors = {"weight": _split(params, weights[:2])[0]}


def _read_layer_state(reader: _Reader, version: int) -> None:
    """What an ``add_layer`` writes after its details: three flags and its cached tensors."""
    for _ in range(3):
        reader.bool()
    reader.tensor()  # x_grad
    reader.tensor()  # cached_output
    if version == 2:
        reader.tensor()  # params_grad


def read_dlib_resnet(path: str | Path) -> tuple[list[Layer], np.ndarray]:
    """The layers (outermost first, with their weights) and the input's channel means (R, G, B)."""
    path = Path(path)
    try:
        reader = _Reader(path.read_bytes(), path)
    except OSError as error:
        raise InputError(f"{path}: cannot read the model file ({error})") from None
    reader.number_version(1, 1, "the loss layer")
    if reader.version("loss_metric_", "loss_metric_2") == "loss_metric_2":
        reader.float(), reader.float()  # margin and distance threshold (training only)
    layers = anet_layers()
    versions = []
    for layer in layers[:-1]:  # going down: each layer's version, then its subnetwork
        versions.append(reader.number_version(1, 2, f"the {layer.kind} layer"))
    bottom = reader.number_version(2, 3, "the input layer")
    reader.version("input_rgb_image_sized")
    means = np.array([reader.float() for _ in range(3)], dtype=np.float64)
    if (reader.int(), reader.int()) != (CHIP_SIZE, CHIP_SIZE):
        raise reader.fail(f"an input that is not {CHIP_SIZE}x{CHIP_SIZE}")
    _read_details(reader, layers[-1])
    for _ in range(3):
        reader.bool()
    reader.tensor(), reader.tensor(), reader.tensor()  # x_grad, cached_output, grad_final
    if bottom == 3:
        reader.int()  # sample expansion factor
    for layer, version in zip(reversed(layers[:-1]), reversed(versions)):  # coming back up: details
        if layer.kind in ("tag", "skip"):
            continue
        _read_details(reader, layer)
        _read_layer_state(reader, version)
    if reader.offset != len(reader.data):
        raise reader.fail("data after the network")
    return layers, means


class DlibResNet(nn.Module):
    """dlib's face-recognition ResNet in torch: (N,3,150,150) uint8-valued RGB chips -> (N,128)."""

    def __init__(self, layers: list[Layer], means: np.ndarray):
        super().__init__()
        self.layers = layers[::-1]  # input side first
        self.register_buffer("means", torch.tensor(means, dtype=torch.float32).view(1, 3, 1, 1))
        for index, layer in enumerate(self.layers):
            for name, value in layer.tensors.items():
                self.register_buffer(f"layer{index}_{name}", torch.from_numpy(value.copy()))

    @classmethod
    def from_file(cls, path: str | Path) -> DlibResNet:
        return cls(*read_dlib_resnet(path)).eval()

    def _tensor(self, index: int, name: str) -> torch.Tensor:
        return getattr(self, f"layer{index}_{name}")

    def forward(self, chips: torch.Tensor) -> torch.Tensor:
        x = (chips.float() - self.means) / 256.0
        tags: dict[int, torch.Tensor] = {}
        for index, layer in enumerate(self.layers):
            if layer.kind == "con":
                bias = self._tensor(index, "bias")
                x = F.conv2d(x, self._tensor(index, "weight"), bias if bias.numel() else None, layer.stride, layer.padding)
            elif layer.kind == "affine":
                x = x * self._tensor(index, "gamma") + self._tensor(index, "beta")
            elif layer.kind == "relu":
                x = F.relu(x)
            elif layer.kind == "max_pool":
                x = F.max_pool2d(x, layer.window, layer.stride, layer.padding)
            elif layer.kind == "avg_pool":
                window = layer.window if layer.window != (0, 0) else tuple(x.shape[-2:])  # 0: the whole map
                x = F.avg_pool2d(x, window, layer.stride, layer.padding)
            elif layer.kind == "tag":
                tags[layer.tag] = x
            elif layer.kind == "skip":
                x = tags[layer.tag]
            elif layer.kind == "add_prev":
                x = _add_prev(x, tags[layer.tag])
            elif layer.kind == "fc":
                x = x.flatten(1) @ self._tensor(index, "weight")
        return x


def _add_prev(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """dlib's ``add_prev``: the sum over the larger shape, each tensor zero outside itself."""
    if a.shape == b.shape:
        return a + b
    shape = [max(p, q) for p, q in zip(a.shape, b.shape)]
    out = a.new_zeros(shape)
    out[: a.shape[0], : a.shape[1], : a.shape[2], : a.shape[3]] += a
    out[: b.shape[0], : b.shape[1], : b.shape[2], : b.shape[3]] += b
    return out
