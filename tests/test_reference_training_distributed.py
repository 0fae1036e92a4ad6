"""Data-parallel training: two `torchrun` CPU processes at batch b against one process at batch 2b.

The processes must see disjoint frames of each step's batch, hand the optimizer the gradient of the
single process (averaged by accelerate), log the same losses, and leave the writing of weights and log
to the main process. Gradient accumulation (2 micro-steps of b) must hand it the gradient of one step of
2b as well.

What is compared is the gradient of the first optimizer step, not the weights after several Adam steps:
the sum over 2b samples is added in another order in each set-up (and at another thread count: torchrun
starts its workers at one thread, pytest runs at torch's default), and Adam divides by sqrt(v) + eps, so
an entry whose gradient is near zero moves by up to ~lr on that rounding alone. A gradient differs by
float rounding only, at any thread count.
"""

from __future__ import annotations

import contextlib
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
from torch.optim.optimizer import register_optimizer_step_pre_hook

from reference.data import load_sequence
from reference.training import TrainOptions, train

# Run under torchrun: spies on which frames each rank draws and on who writes, then trains.
WORKER = textwrap.dedent("""
    import json, os, sys
    import torch
    from torch.optim.optimizer import register_optimizer_step_pre_hook
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

    gradients = []

    def spy_step(optimizer, args, kwargs):  # the gradient each optimizer step is handed (after averaging)
        gradients.append(torch.cat([p.grad.flatten() for g in optimizer.param_groups for p in g["params"]]))

    training.make_batch, training.save_target, training.LossLog.__init__ = spy_batch, spy_save, spy_log
    register_optimizer_step_pre_hook(spy_step)
    code = main(sys.argv[2:])
    torch.save(gradients, os.path.join(sys.argv[1], f"rank{rank}.pt"))
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


@contextlib.contextmanager
def optimizer_gradients():
    """The gradients (one flat tensor per optimizer step) handed to every optimizer stepped inside."""
    gradients: list[torch.Tensor] = []

    def spy(optimizer, args, kwargs):
        gradients.append(torch.cat([p.grad.flatten() for g in optimizer.param_groups for p in g["params"]]))

    handle = register_optimizer_step_pre_hook(spy)
    try:
        yield gradients
    finally:
        handle.remove()


def assert_same_gradient(a: torch.Tensor, b: torch.Tensor) -> None:
    """Equal up to float32 rounding of sums taken in another order: within 1e-4 of the gradient's norm
    overall and within 1e-3 of its largest entry everywhere. Another batch, or gradients summed instead
    of averaged, differ by the order of the gradient itself."""
    assert a.shape == b.shape and float(b.norm()) > 0
    assert float((a - b).norm() / b.norm()) < 1e-4, float((a - b).norm() / b.norm())
    assert float((a - b).abs().max()) < 1e-3 * float(b.abs().max())


def assert_trained(folder, start):
    """Weights written, and moved from the initial ones by ~lr (Adam's first steps move each entry by ~lr)."""
    written = weights(folder)
    assert written.keys() == start.keys()
    moved = torch.cat([(written[k] - start[k]).abs().flatten() for k in written])
    assert float((moved > LR / 2).float().mean()) > 0.5


@pytest.mark.slow
def test_two_torchrun_processes_match_one_process_at_twice_the_batch(sequence, tmp_path):
    single = tmp_path / "single"
    with optimizer_gradients() as gradients:  # at this process's thread count (torch's default)
        train(TrainOptions(stage="stage2", steps=STEPS, batch_size=2 * PER_PROCESS, learning_rate=LR,
                           progress=False, device="cpu"), load_sequence(sequence, "train"), single)
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
    launched = [torch.load(tmp_path / f"rank{r}.pt") for r in (0, 1)]
    assert len(launched[0]) == len(launched[1]) == len(gradients) == STEPS
    torch.testing.assert_close(launched[0][0], launched[1][0], rtol=0, atol=0)  # all-reduced: the same bits
    assert_same_gradient(launched[0][0], gradients[0])
    with pytest.raises(AssertionError):  # the check can fail: another step's batch is another gradient
        assert_same_gradient(launched[0][1], gradients[0])
    with pytest.raises(AssertionError):  # and so is one summed over the processes instead of averaged
        assert_same_gradient(2 * launched[0][0], gradients[0])
    # the first step's loss is a forward pass on the same weights; later ones follow Adam-rounded weights
    np.testing.assert_allclose(losses(tmp_path / "ddp")[0], losses(single)[0], rtol=1e-5)
    np.testing.assert_allclose(losses(tmp_path / "ddp"), losses(single), rtol=1e-3)
    assert_trained(tmp_path / "ddp", initial_weights())


def test_gradient_accumulation_matches_the_whole_batch(sequence, tmp_path):
    data = load_sequence(sequence, "train")
    common = dict(stage="stage2", steps=STEPS, learning_rate=LR, progress=False, device="cpu")
    with optimizer_gradients() as whole_gradients:
        whole = train(TrainOptions(batch_size=4, **common), data, tmp_path / "whole")
    with optimizer_gradients() as split_gradients:  # one optimizer step per 2 micro-steps
        split = train(TrainOptions(batch_size=2, gradient_accumulation_steps=2, **common), data, tmp_path / "split")
    assert len(whole_gradients) == len(split_gradients) == STEPS
    assert_same_gradient(split_gradients[0], whole_gradients[0])
    np.testing.assert_allclose(split[0], whole[0], rtol=1e-5)
    np.testing.assert_allclose(split, whole, rtol=1e-3)
    assert_trained(tmp_path / "split", initial_weights())
