"""Registry entries of the per-frame image metrics (L1, L2, PSNR, SSIM, LPIPS).

Each is computed by the evaluation protocol in force (see :mod:`metrics.protocols`), so the same
metric name gives the canonical number by default and a published script's number under that
script's protocol.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from metrics.image import lpips_unavailable, lpips_weights
from metrics.protocols import Protocol, get_protocol
from metrics.registry import Batch, Evaluator, MetricSpec, keyword_defaults, register


class ProtocolFrameMetric(Evaluator):
    """Computes one per-frame image metric with the protocol's formula."""

    def __init__(self, name: str, protocol: Protocol | str | None, **options: Any):
        self.name = name
        self.columns = (name,)
        self.protocol = get_protocol(protocol or "canonical")
        self.options = options  # the kernel's keyword arguments (see LPIPS below)

    def update(self, batch: Batch) -> dict[str, np.ndarray]:
        with torch.no_grad():
            values = self.protocol.frame_metric(self.name, batch.pred, batch.gt, batch.mask, **self.options)
        return {self.name: values.detach().double().cpu().numpy()}


class LPIPSFrameMetric(ProtocolFrameMetric):
    """LPIPS with its options: the trunk (``alex`` or ``vgg``) and its weight file (None: looked up)."""

    def __init__(self, name: str, protocol: Protocol | str | None, *, net: str = "alex",
                 backbone_weights: str | None = None):
        super().__init__(name, protocol, net=net, backbone_weights=backbone_weights)


def _factory(name: str, cls: type[ProtocolFrameMetric] = ProtocolFrameMetric):
    def factory(device: torch.device, protocol: Protocol | str | None = None, **options: Any) -> Evaluator:
        return cls(name, protocol, **options)

    return factory


# Paper formats: the precision of the paper's Table 1 (L2 4 decimals, PSNR and SSIM 2, LPIPS 3).
register(MetricSpec("l1", higher_is_better=False, unit="", description="mean absolute error per frame, images in [0,1]",
                    factory=_factory("l1"), value_range=(0.0, 1.0)))
register(MetricSpec("l2", higher_is_better=False, unit="", description="mean squared error per frame (the paper's L2), images in [0,1]",
                    factory=_factory("l2"), paper_format=".4f", value_range=(0.0, 1.0)))
register(MetricSpec("psnr", higher_is_better=True, unit="dB", description="peak signal-to-noise ratio per frame, data range 1",
                    factory=_factory("psnr"), paper_format=".2f", trace=True, value_range=(0.0, math.inf)))
register(MetricSpec("ssim", higher_is_better=True, unit="", description="structural similarity (Wang et al. 2004), Gaussian 11 / sigma 1.5",
                    factory=_factory("ssim"), paper_format=".2f", trace=True, value_range=(-1.0, 1.0),
                    version=2))  # 2: float32 frames filtered in float32 through the frames' sum and difference (<= 6e-8)
register(MetricSpec("lpips", higher_is_better=False, unit="", description="LPIPS v0.1 (lpips package), AlexNet trunk by default",
                    factory=_factory("lpips", LPIPSFrameMetric),
                    needs=("package:lpips", "weights:alexnet-owt-7be5be79.pth (or vgg16 for net='vgg')"),
                    defaults=keyword_defaults(LPIPSFrameMetric), check=lpips_unavailable, paper_format=".3f",
                    weights=lpips_weights, trace=True, value_range=(0.0, math.inf)))
