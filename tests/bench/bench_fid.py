"""Timing: Inception feature extraction of the pytorch-fid protocol against pytorch-fid's own loop.

Run: ``pytest tests/bench/bench_fid.py --benchmark-only`` (``CABENCH_BENCH_FID_FRAMES`` frames of
512x512, default 350 as in the issue; a CPU shared by other work may need fewer). Both sides load
one random-weight file in pytorch-fid's format and compute the features of the same PNG files:
pytorch-fid's ``get_activations`` (its DataLoader of PIL images, ``ToTensor``, batch 50, its
``InceptionV3`` with resize and normalisation, no_grad) and the harness's reader, the
``pytorch-fid`` protocol's preparation and :meth:`metrics.setlevel.SetMetric.features` in batches
of ``SetMetric.feature_batch`` (50; how the engine reads them) under inference mode. The features are checked equal (1e-4) before
timing, so the ratio of the two timings is the speed-up at equal values.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

FRAMES = int(os.environ.get("CABENCH_BENCH_FID_FRAMES", "350"))
SIZE = 512


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    pytest.importorskip("pytorch_fid")
    from skimage import data
    from skimage.transform import resize

    from benchmark.io import write_frames
    from metrics.inception import FIDInception

    root = tmp_path_factory.mktemp("fid_bench")
    photo = (resize(data.astronaut(), (SIZE, SIZE), anti_aliasing=True) * 255).round().astype(np.uint8)
    write_frames(root / "frames", np.stack([np.roll(photo, 3 * i, axis=1) for i in range(FRAMES)]))
    torch.manual_seed(0)
    model = FIDInception()
    for module in model.modules():  # statistics that keep activations in range through the random layers
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_var.fill_(4.0)
    weights = root / "hub" / "checkpoints" / "pt_inception-2015-12-05-6726825d.pth"
    weights.parent.mkdir(parents=True)
    torch.save(model.state_dict(), weights)
    return root, weights


def pytorch_fid_loop(root: Path) -> np.ndarray:
    os.environ["TORCH_HOME"] = str(root)
    from pytorch_fid.fid_score import get_activations
    from pytorch_fid.inception import InceptionV3

    files = sorted((root / "frames").glob("*.png"))
    return get_activations(files, InceptionV3([3]), batch_size=50, dims=2048, device="cpu", num_workers=0)


def harness_loop(root: Path, weights: Path) -> np.ndarray:
    from benchmark.io import BATCH_SIZE, open_frames
    from metrics.protocols import get_protocol
    from metrics.setlevel import SetMetric

    protocol = get_protocol("pytorch-fid")
    metric = SetMetric("fid", protocol, torch.device("cpu"), str(weights), 0, 1, None, 0)
    source = open_frames(str(root / "frames"))
    ids, batch = source.frame_ids, max(BATCH_SIZE, metric.feature_batch)  # as benchmark.engine.sets reads them
    return np.concatenate([metric.features(protocol.prepare_gt(source.read(ids[i : i + batch])).gt)
                           for i in range(0, len(ids), batch)])


def test_features_agree(setup):
    root, weights = setup
    np.testing.assert_allclose(harness_loop(root, weights), pytorch_fid_loop(root), rtol=1e-4, atol=1e-4)


def test_bench_pytorch_fid_loop(benchmark, setup):
    benchmark.pedantic(pytorch_fid_loop, args=(setup[0],), rounds=1, iterations=1)


def test_bench_harness_features(benchmark, setup):
    benchmark.pedantic(harness_loop, args=setup, rounds=1, iterations=1)
