"""Data-parallel training: two `torchrun` CPU processes at batch b against one process at batch 2b.

The processes must see disjoint frames of each step's batch, reach the weights of the single
process (gradients averaged by accelerate; equal up to float rounding), log the same losses, and
leave the writing of weights and log to the main process. Gradient accumulation (2 micro-steps of
b) must reach the same weights as one step of 2b as well.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from reference_helpers import make_sequence
from safetensors.torch import load_file

from reference.data import load_sequence
from reference.training import TrainOptions, train

# Run under torchrun: spies on which frames each rank draws and on who writes, then trains.
WORKER = textwrap.dedent("""
    import json, os, sys
    import reference.training as training
    from benchmark.cli import main

    rank, record = int(os.environ["RANK"]), {"frames": [], "saved": 0, "logged": False}
    make_batch, save_target, loss_log = training.make_batch, training.save_target, training.LossLog.__init__

    def spy_batch(data, indices, *args):
        record["frames"].append(sorted(int(i) for i in indices))
        return make_batch(data, indices, *args)

    def spy_save(*args):
        record["saved"] += 1
        return save_target(*args)

    def spy_log(self, path, start, enabled):
        record["logged"] = record["logged"] or enabled
        return loss_log(self, path, start, enabled)

    training.make_batch, training.save_target, training.LossLog.__init__ = spy_batch, spy_save, spy_log
    code = main(sys.argv[2:])
    with open(os.path.join(sys.argv[1], f"rank{rank}.json"), "w") as stream:
        json.dump(record, stream)
    sys.exit(code)
""")

STEPS, PER_PROCESS, LR = 2, 2, 1e-3


@pytest.fixture(scope="module")
def sequence(tmp_path_factory):
    return make_sequence(tmp_path_factory.mktemp("data") / "seq", frames=6, size=32)  # 4 training frames


def weights(folder):
    return load_file(folder / "tsdm_unet" / "diffusion_pytorch_model.safetensors")


def initial_weights():
    from reference.config import build_components

    return build_components("tiny", seed=0)["tsdm_unet"].state_dict()


def losses(folder):
    return np.loadtxt(folder / "train_log_stage2.csv", delimiter=",", skiprows=1)


def assert_same_weights(a, b, start):
    """Equal up to float rounding, as Adam amplifies it: Adam divides by sqrt(v) + eps, so an entry
    whose gradient is near zero moves by up to ~lr on rounding noise alone (the sum over 2b samples
    is added in another order). So: every entry within lr / 2 and 99.9% within 1e-5, where another
    batch (or unaveraged gradients) moves most entries by ~lr."""
    assert a.keys() == b.keys()
    diff = torch.cat([(a[k] - b[k]).abs().flatten() for k in a])
    moved = torch.cat([(a[k] - start[k]).abs().flatten() for k in a])
    assert float(diff.max()) < LR / 2, float(diff.max())
    assert float((diff > 1e-5).float().mean()) < 1e-3
    assert float((moved > LR / 2).float().mean()) > 0.5  # training moved the weights by ~lr


@pytest.mark.slow
def test_two_torchrun_processes_match_one_process_at_twice_the_batch(sequence, tmp_path):
    single = tmp_path / "single"
    train(TrainOptions(stage="stage2", steps=STEPS, batch_size=2 * PER_PROCESS, learning_rate=LR, progress=False,
                       device="cpu"), load_sequence(sequence, "train"), single)
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(script),
               str(tmp_path), "train", "stage2", "--data", str(sequence), "--output", str(tmp_path / "ddp"),
               "--steps", str(STEPS), "--batch-size", str(PER_PROCESS), "--lr", str(LR), "--size", "32", "--quiet"]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]

    for step in range(STEPS):  # disjoint shards that together are the single process's batch
        a, b = ranks[0]["frames"][step], ranks[1]["frames"][step]
        assert len(a) == len(b) == PER_PROCESS and not set(a) & set(b)
    assert ranks[0]["saved"] == 1 and ranks[1]["saved"] == 0
    assert ranks[0]["logged"] and not ranks[1]["logged"]
    np.testing.assert_allclose(losses(tmp_path / "ddp"), losses(single), rtol=1e-5)
    assert_same_weights(weights(tmp_path / "ddp"), weights(single), initial_weights())


def test_gradient_accumulation_matches_the_whole_batch(sequence, tmp_path):
    data = load_sequence(sequence, "train")
    common = dict(stage="stage2", steps=STEPS, learning_rate=LR, progress=False, device="cpu")
    whole = train(TrainOptions(batch_size=4, **common), data, tmp_path / "whole")
    split = train(TrainOptions(batch_size=2, gradient_accumulation_steps=2, **common), data, tmp_path / "split")
    np.testing.assert_allclose(split, whole, rtol=1e-5)
    assert_same_weights(weights(tmp_path / "split"), weights(tmp_path / "whole"), initial_weights())
