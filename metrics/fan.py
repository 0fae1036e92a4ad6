"""FAN 68-point face alignment (Bulat & Tzimiropoulos 2017) as the ``face_alignment`` package computes it.

The landmarks behind AKD (:mod:`metrics.keypoints`), as FOMM's ``pose-evaluation`` gets them:
``face_alignment.FaceAlignment(LandmarksType._2D, flip_input=False).get_landmarks(frame)`` at the
commit its submodule pins (1adrianb/face-alignment 3750f83, v1.0):

- :class:`FAN`: its 4-stack hourglass network (``models.FAN(4)``, the same parameter names, so a
  ``2DFAN-4.pth.tar`` state dict loads as is);
- :func:`fan_landmarks`: for a face box (x1, y1, x2, y2): centre = the box centre moved up by 0.12
  of its height, scale = (width + height) / 195; the 256x256 crop of its ``utils.crop`` (integer
  corners from ``transform(..., invert=True)``, zero padding, ``cv2.resize`` bilinear), values / 255;
  the last stack's 64x64 heatmaps; the arg-max of each, moved a quarter pixel towards the larger
  neighbour, minus 0.5 (``get_preds_fromhm``), mapped back to the frame by the inverse transform,
  whose ``.int()`` truncates every coordinate to an integer (kept: that version's landmarks are
  integers).

The face box comes from the caller: face_alignment detects it with S3FD; here dlib's box stands in
(a recorded deviation, :mod:`metrics.keypoints`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from metrics.weights import checked_state, from_manifest

REFERENCE_SCALE = 195.0
CROP = 256
HEATMAP = 64


def _conv3x3(cin: int, cout: int) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, kernel_size=3, stride=1, padding=1, bias=False)


class ConvBlock(nn.Module):
    """Pre-activation block whose three 3x3 convolutions (1/2, 1/4, 1/4 of the width) are concatenated."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.bn1, self.conv1 = nn.BatchNorm2d(cin), _conv3x3(cin, cout // 2)
        self.bn2, self.conv2 = nn.BatchNorm2d(cout // 2), _conv3x3(cout // 2, cout // 4)
        self.bn3, self.conv3 = nn.BatchNorm2d(cout // 4), _conv3x3(cout // 4, cout // 4)
        self.downsample = None
        if cin != cout:
            self.downsample = nn.Sequential(nn.BatchNorm2d(cin), nn.ReLU(True), nn.Conv2d(cin, cout, 1, 1, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out1 = self.conv1(F.relu(self.bn1(x), True))
        out2 = self.conv2(F.relu(self.bn2(out1), True))
        out3 = self.conv3(F.relu(self.bn3(out2), True))
        residual = x if self.downsample is None else self.downsample(x)
        return torch.cat((out1, out2, out3), 1) + residual


class HourGlass(nn.Module):
    """A depth-4 hourglass of ConvBlocks (modules named ``b1_L``, ``b2_L``, ``b2_plus_1``, ``b3_L``)."""

    def __init__(self, depth: int = 4, features: int = 256):
        super().__init__()
        self.depth = depth
        self._build(depth, features)

    def _build(self, level: int, features: int) -> None:
        self.add_module(f"b1_{level}", ConvBlock(features, features))
        self.add_module(f"b2_{level}", ConvBlock(features, features))
        if level > 1:
            self._build(level - 1, features)
        else:
            self.add_module(f"b2_plus_{level}", ConvBlock(features, features))
        self.add_module(f"b3_{level}", ConvBlock(features, features))

    def _forward(self, level: int, x: torch.Tensor) -> torch.Tensor:
        up = self._modules[f"b1_{level}"](x)
        low = self._modules[f"b2_{level}"](F.avg_pool2d(x, 2, stride=2))
        low = self._forward(level - 1, low) if level > 1 else self._modules[f"b2_plus_{level}"](low)
        low = self._modules[f"b3_{level}"](low)
        return up + F.interpolate(low, scale_factor=2, mode="nearest")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._forward(self.depth, x)


class FAN(nn.Module):
    """face_alignment's ``FAN(num_modules)``; ``forward`` returns every stack's (N,68,64,64) heatmaps."""

    def __init__(self, num_modules: int = 4):
        super().__init__()
        self.num_modules = num_modules
        self.conv1 = nn.Conv2d(3, 64, kernel_size=7, stride=2, padding=3)
        self.bn1 = nn.BatchNorm2d(64)
        self.conv2, self.conv3, self.conv4 = ConvBlock(64, 128), ConvBlock(128, 128), ConvBlock(128, 256)
        for i in range(num_modules):
            self.add_module(f"m{i}", HourGlass(4, 256))
            self.add_module(f"top_m_{i}", ConvBlock(256, 256))
            self.add_module(f"conv_last{i}", nn.Conv2d(256, 256, 1, 1, 0))
            self.add_module(f"bn_end{i}", nn.BatchNorm2d(256))
            self.add_module(f"l{i}", nn.Conv2d(256, 68, 1, 1, 0))
            if i < num_modules - 1:
                self.add_module(f"bl{i}", nn.Conv2d(256, 256, 1, 1, 0))
                self.add_module(f"al{i}", nn.Conv2d(68, 256, 1, 1, 0))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = F.relu(self.bn1(self.conv1(x)), True)
        x = self.conv4(self.conv3(F.avg_pool2d(self.conv2(x), 2, stride=2)))
        previous, outputs = x, []
        for i in range(self.num_modules):
            ll = self._modules[f"top_m_{i}"](self._modules[f"m{i}"](previous))
            ll = F.relu(self._modules[f"bn_end{i}"](self._modules[f"conv_last{i}"](ll)), True)
            heatmaps = self._modules[f"l{i}"](ll)
            outputs.append(heatmaps)
            if i < self.num_modules - 1:
                previous = previous + self._modules[f"bl{i}"](ll) + self._modules[f"al{i}"](heatmaps)
        return outputs


def fan_state(path: str | Path) -> dict[str, torch.Tensor]:
    """The state dict of a ``2DFAN-4.pth.tar`` file, checked to fit :class:`FAN` (4 stacks)."""
    return checked_state(path, FAN, "FAN (face_alignment's 2DFAN-4)")


FAN_WEIGHTS = from_manifest("fan-2dfan4", check=lambda path: fan_state(path))


def load_fan(path: str | Path, device: torch.device | str = "cpu") -> FAN:
    model = FAN(4)
    model.load_state_dict(fan_state(path))
    return model.eval().to(device)


def _transform(point, center: torch.Tensor, scale: float, resolution: float, invert: bool = False) -> torch.Tensor:
    """face_alignment's ``utils.transform``: the point through the crop's affine map (float32), truncated to int."""
    pt = torch.ones(3)
    pt[0], pt[1] = point[0], point[1]
    h = 200.0 * scale
    t = torch.eye(3)
    t[0, 0] = resolution / h
    t[1, 1] = resolution / h
    t[0, 2] = resolution * (-center[0] / h + 0.5)
    t[1, 2] = resolution * (-center[1] / h + 0.5)
    if invert:
        t = torch.inverse(t)
    return torch.matmul(t, pt)[0:2].int()


def fan_crop(image: np.ndarray, center: torch.Tensor, scale: float, resolution: float = float(CROP)) -> np.ndarray:
    """face_alignment's ``utils.crop``: the region the transform maps to the crop, zero-padded, resized bilinearly."""
    import cv2

    ul = _transform([1, 1], center, scale, resolution, True)
    br = _transform([resolution, resolution], center, scale, resolution, True)
    out = np.zeros((int(br[1] - ul[1]), int(br[0] - ul[0]), image.shape[2]), dtype=np.uint8)
    ht, wd = image.shape[:2]
    new_x = [max(1, -int(ul[0]) + 1), min(int(br[0]), wd) - int(ul[0])]
    new_y = [max(1, -int(ul[1]) + 1), min(int(br[1]), ht) - int(ul[1])]
    old_x = [max(1, int(ul[0]) + 1), min(int(br[0]), wd)]
    old_y = [max(1, int(ul[1]) + 1), min(int(br[1]), ht)]
    out[new_y[0] - 1:new_y[1], new_x[0] - 1:new_x[1]] = image[old_y[0] - 1:old_y[1], old_x[0] - 1:old_x[1], :]
    return cv2.resize(out, dsize=(int(resolution), int(resolution)), interpolation=cv2.INTER_LINEAR)


def heatmap_points(heatmaps: torch.Tensor, center: torch.Tensor, scale: float) -> np.ndarray:
    """face_alignment's ``get_preds_fromhm`` for one face: (68,2) points in the frame (see the module docstring)."""
    hm = heatmaps[0]
    size = hm.shape[-1]
    _, idx = torch.max(hm.reshape(hm.shape[0], -1), 1)
    idx = idx + 1
    preds = torch.stack([((idx - 1) % size + 1).float(), torch.floor((idx - 1).float() / size) + 1], 1)
    for j in range(preds.shape[0]):
        px, py = int(preds[j, 0]) - 1, int(preds[j, 1]) - 1
        if 0 < px < size - 1 and 0 < py < size - 1:
            diff = torch.tensor([hm[j, py, px + 1] - hm[j, py, px - 1], hm[j, py + 1, px] - hm[j, py - 1, px]])
            preds[j] += diff.sign() * 0.25
    preds -= 0.5
    return np.stack([_transform(p, center, scale, size, True).numpy() for p in preds]).astype(np.float64)


def fan_landmarks(model: FAN, image: np.ndarray, box: tuple[float, float, float, float]) -> np.ndarray:
    """(68,2) landmarks of the face in ``box`` (x1, y1, x2, y2) of an (H,W,3) uint8 RGB image."""
    x1, y1, x2, y2 = box
    center = torch.tensor([x2 - (x2 - x1) / 2.0, y2 - (y2 - y1) / 2.0], dtype=torch.float32)
    center[1] = center[1] - (y2 - y1) * 0.12
    scale = (x2 - x1 + y2 - y1) / REFERENCE_SCALE
    crop = fan_crop(np.ascontiguousarray(image), center, scale)
    inp = torch.from_numpy(crop.transpose((2, 0, 1))).float().div_(255.0).unsqueeze_(0)
    device = next(model.parameters()).device
    with torch.no_grad():
        heatmaps = model(inp.to(device))[-1].detach().cpu()
    return heatmap_points(heatmaps, center, scale)
