"""SyncNet (Chung & Zisserman 2016) as ``joonson/syncnet_python`` runs it: network, audio features, offset search.

The functional kernels behind LSE-C / LSE-D (:mod:`metrics.lipsync`), each the computation of
syncnet_python's ``SyncNetInstance.evaluate`` (Wav2Lip's ``evaluation/scores_LSE`` uses the same):

- :class:`SyncNet`: the two-stream network of its ``SyncNetModel.S`` (layer for layer, the same
  parameter names, so its ``syncnet_v2.model`` state dict loads as is): a 3-D convolutional lip
  stream on 5 frames of 224x224 BGR face crops with values 0..255 (no normalisation), and a 2-D
  audio stream on 13 MFCC coefficients x 20 MFCC frames (0.2 s); both end in 1024-d features.
- :func:`mfcc`: ``python_speech_features.mfcc(audio, 16000)`` with its defaults (25 ms windows every
  10 ms, 13 cepstra, 26 filters, 512-point FFT, pre-emphasis 0.97, energy in c0, lifter 22): 4 MFCC
  frames per video frame at 25 fps.
- :func:`window_count`: ``min(frames, floor(samples / 640)) - 5`` windows (syncnet_python's
  ``lastframe``: one window fewer than the frames allow, kept as it is).
- :func:`sync_distances`: for window ``t``, the distances (``pairwise_distance``, eps 1e-6) from
  its video feature to the audio features of windows ``t - vshift .. t + vshift``, zero vectors
  beyond either end (``calc_pdist``'s padding, kept).
- :func:`sync_scores`: the mean distance per offset; LSE-D = its minimum, AV offset = ``vshift``
  minus the index of the minimum (positive: the audio leads), LSE-C = median - minimum. Per window,
  the distance at the chosen offset (``fdist``) and ``median - fdist``: their means over windows are
  LSE-D and LSE-C exactly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from metrics.weights import checked_state, from_manifest, load_checkpoint

AUDIO_RATE = 16000
FPS = 25.0
WINDOW = 5            # video frames per window
MFCC_PER_FRAME = 4    # 100 MFCC frames / s over 25 video frames / s
MFCC_WINDOW = 20
CROP = 224
VSHIFT = 15
FEATURES = 1024


def _bn_relu(layer: nn.Module, channels: int, dims: int, inplace: bool = True) -> list[nn.Module]:
    norm = {1: nn.BatchNorm1d, 2: nn.BatchNorm2d, 3: nn.BatchNorm3d}[dims](channels)
    return [layer, norm, nn.ReLU(inplace=inplace)]


class SyncNet(nn.Module):
    """syncnet_python's ``S`` (see the module docstring); ``forward_lip`` / ``forward_aud`` give the features.

    ``width`` scales every layer's channels (1: syncnet_python's network) and ``features`` sets the
    embedding size: the same architecture at a reduced width, for weights a test trains on CPU
    (:func:`syncnet_state` reads both from a state dict's shapes)."""

    def __init__(self, features: int = FEATURES, width: float = 1.0):
        super().__init__()
        c2, c3 = nn.Conv2d, nn.Conv3d

        def w(channels: int) -> int:
            return max(1, round(channels * width))

        self.netcnnaud = nn.Sequential(
            *_bn_relu(c2(1, w(64), (3, 3), (1, 1), (1, 1)), w(64), 2), nn.MaxPool2d((1, 1), (1, 1)),
            *_bn_relu(c2(w(64), w(192), (3, 3), (1, 1), (1, 1)), w(192), 2), nn.MaxPool2d((3, 3), (1, 2)),
            *_bn_relu(c2(w(192), w(384), (3, 3), padding=(1, 1)), w(384), 2),
            *_bn_relu(c2(w(384), w(256), (3, 3), padding=(1, 1)), w(256), 2),
            *_bn_relu(c2(w(256), w(256), (3, 3), padding=(1, 1)), w(256), 2), nn.MaxPool2d((3, 3), (2, 2)),
            *_bn_relu(c2(w(256), w(512), (5, 4), padding=(0, 0)), w(512), 2, inplace=False),
        )
        self.netfcaud = nn.Sequential(nn.Linear(w(512), w(512)), nn.BatchNorm1d(w(512)), nn.ReLU(),
                                      nn.Linear(w(512), features))
        self.netfclip = nn.Sequential(nn.Linear(w(512), w(512)), nn.BatchNorm1d(w(512)), nn.ReLU(),
                                      nn.Linear(w(512), features))
        self.netcnnlip = nn.Sequential(
            *_bn_relu(c3(3, w(96), (5, 7, 7), (1, 2, 2), 0), w(96), 3), nn.MaxPool3d((1, 3, 3), (1, 2, 2)),
            *_bn_relu(c3(w(96), w(256), (1, 5, 5), (1, 2, 2), (0, 1, 1)), w(256), 3),
            nn.MaxPool3d((1, 3, 3), (1, 2, 2), (0, 1, 1)),
            *_bn_relu(c3(w(256), w(256), (1, 3, 3), padding=(0, 1, 1)), w(256), 3),
            *_bn_relu(c3(w(256), w(256), (1, 3, 3), padding=(0, 1, 1)), w(256), 3),
            *_bn_relu(c3(w(256), w(256), (1, 3, 3), padding=(0, 1, 1)), w(256), 3), nn.MaxPool3d((1, 3, 3), (1, 2, 2)),
            *_bn_relu(c3(w(256), w(512), (1, 6, 6), padding=0), w(512), 3),
        )

    def forward_aud(self, x: torch.Tensor) -> torch.Tensor:
        """(N,1,13,20) MFCC windows -> (N,1024)."""
        return self.netfcaud(self.netcnnaud(x).flatten(1))

    def forward_lip(self, x: torch.Tensor) -> torch.Tensor:
        """(N,3,5,224,224) BGR crops, 0..255 -> (N,1024)."""
        return self.netfclip(self.netcnnlip(x).flatten(1))


def _fill_batch_counters(state: dict) -> dict:
    """Checkpoints saved before PyTorch 0.4.1 lack BatchNorm's ``num_batches_tracked`` (unused in
    evaluation): zeros stand in, as ``load_state_dict`` of syncnet_python's copy loop leaves them."""
    if not isinstance(state, dict):
        return state
    state = dict(state)
    for key in [k for k in state if k.endswith(".running_mean")]:
        state.setdefault(key[: -len("running_mean")] + "num_batches_tracked", torch.zeros((), dtype=torch.long))
    return state


def syncnet_shape(state: object) -> tuple[int, float]:
    """(features, width) of the :class:`SyncNet` a state dict fits, read from its shapes (syncnet_python's
    network: (1024, 1.0)); the full network's when the keys are not there (the check then names them)."""
    if isinstance(state, dict):
        first, last = state.get("netcnnaud.0.weight"), state.get("netfcaud.3.weight")
        if isinstance(first, torch.Tensor) and isinstance(last, torch.Tensor) and first.ndim == 4 and last.ndim == 2:
            return int(last.shape[0]), first.shape[0] / 64
    return FEATURES, 1.0


def syncnet_state(path: str | Path) -> tuple[dict[str, torch.Tensor], tuple[int, float]]:
    """The state dict in a ``syncnet_v2.model`` file, checked to fit :class:`SyncNet` at the width its
    shapes give, and that (features, width)."""

    shape = syncnet_shape(_fill_batch_counters(load_checkpoint(path)))
    state = checked_state(path, lambda: SyncNet(*shape), "SyncNet (syncnet_python's S)", convert=_fill_batch_counters)
    return state, shape


SYNCNET_WEIGHTS = from_manifest("syncnet-v2", check=lambda path: syncnet_state(path))


def load_syncnet(path: str | Path, device: torch.device | str = "cpu") -> SyncNet:
    """:class:`SyncNet` with the weights of ``path``, in evaluation mode."""
    state, shape = syncnet_state(path)
    model = SyncNet(*shape)
    model.load_state_dict(state)
    return model.eval().to(device)


def mfcc(samples: np.ndarray, rate: int = AUDIO_RATE) -> np.ndarray:
    """(13, M) MFCC of int16 ``samples``, as syncnet_python computes them (see the module docstring)."""
    import python_speech_features

    return np.ascontiguousarray(python_speech_features.mfcc(samples, rate).T)


def window_count(frames: int, samples: int, rate: int = AUDIO_RATE, fps: float = FPS) -> int:
    """Number of 5-frame windows syncnet_python scores (see the module docstring); at most 0 is none."""
    return min(frames, math.floor(samples / (rate / fps))) - WINDOW


def audio_features(model: SyncNet, cepstra: np.ndarray, windows: int, batch: int = 20) -> torch.Tensor:
    """(windows, 1024) audio features of MFCC windows ``[4t, 4t + 20)``."""
    cct = torch.from_numpy(cepstra.astype(float)).float()[None, None]
    device = next(model.parameters()).device
    out = []
    with torch.no_grad():
        for i in range(0, windows, batch):
            chunk = [cct[:, :, :, t * MFCC_PER_FRAME:t * MFCC_PER_FRAME + MFCC_WINDOW] for t in range(i, min(windows, i + batch))]
            out.append(model.forward_aud(torch.cat(chunk, 0).to(device)).cpu())
    return torch.cat(out, 0) if out else torch.zeros(0, model.netfcaud[-1].out_features)


def lip_features(model: SyncNet, crops: torch.Tensor) -> torch.Tensor:
    """(N,1024) video features of (N,3,5,224,224) float windows of BGR crops."""
    device = next(model.parameters()).device
    with torch.no_grad():
        return model.forward_lip(crops.to(device)).cpu()


def sync_distances(video: torch.Tensor, audio: torch.Tensor, vshift: int = VSHIFT) -> torch.Tensor:
    """(windows, 2 vshift + 1) distances of each window's video feature to the audio features at
    offsets -vshift..vshift (zero-padded beyond the ends, as calc_pdist pads)."""
    span = 2 * vshift + 1
    padded = torch.nn.functional.pad(audio, (0, 0, vshift, vshift))
    rows = [torch.nn.functional.pairwise_distance(video[[i], :].repeat(span, 1), padded[i:i + span, :])
            for i in range(len(video))]
    return torch.stack(rows, 0) if rows else torch.zeros(0, span)


@dataclass(frozen=True)
class SyncScores:
    """What :func:`sync_scores` finds: LSE-D (``min_dist``), LSE-C (``confidence``), the AV offset in
    frames, and per window the distance at that offset and the confidence ``median - distance``."""

    min_dist: float
    confidence: float
    offset: int
    frame_dist: np.ndarray
    frame_conf: np.ndarray
    mean_dists: np.ndarray


def sync_scores(dists: torch.Tensor, vshift: int = VSHIFT) -> SyncScores:
    """LSE-D, LSE-C and the offset from (windows, 2 vshift + 1) distances (see the module docstring)."""
    mdist = torch.mean(dists.T, 1)
    minval, minidx = torch.min(mdist, 0)
    median = torch.median(mdist)
    fdist = dists[:, int(minidx)].numpy()
    return SyncScores(float(minval), float(median - minval), int(vshift - minidx), fdist,
                      median.numpy() - fdist, mdist.numpy())
