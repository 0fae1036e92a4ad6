"""What one training step draws, and which part of it each process and micro-step takes.

Convention (data parallel, as ``accelerate`` counts batches): ``--batch-size`` is the batch of one
process in one micro-step, so an optimizer step covers a *global batch* of
``batch_size x processes x accumulation steps`` samples. Every random choice of step k (which
frames, which timesteps, which noise) is drawn for the whole global batch from one generator
seeded with (seed, k), and each (micro-step, process) pair takes its own rows of it:
micro-step m of process r takes rows ``[(m * processes + r) * batch_size, ... + batch_size)``.

Why: the draws depend on (seed, step, rank, world size, accumulation) only, so a resumed run
draws what an uninterrupted one draws (for a fixed world size), the processes see disjoint
frames, and 2 processes at batch b (or 2 accumulation steps at batch b) see exactly the samples
and noise of 1 process at batch 2b; with gradients averaged they reach the same weights up to
float rounding. Frames are drawn without replacement within a step (a random permutation, so
the shards never share a frame while the global batch fits in the data).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


@dataclass(frozen=True)
class Shard:
    """This process's place: ``rank`` of ``world_size`` processes, ``accumulation`` micro-steps per step."""

    batch_size: int
    rank: int = 0
    world_size: int = 1
    accumulation: int = 1

    @property
    def global_batch(self) -> int:
        return self.batch_size * self.world_size * self.accumulation

    def rows(self, micro_step: int) -> slice:
        start = (micro_step * self.world_size + self.rank) * self.batch_size
        return slice(start, start + self.batch_size)


def step_seed(seed: int, step: int) -> int:
    return seed * 1_000_003 + step


class StepDraw:
    """The random draws of optimizer step ``step``, cut to the rows of one (micro-step, process).

    Each call draws the global batch's values from the step's generator and returns this part's
    rows, so every part makes the same sequence of draws and gets its own slice of each.
    """

    def __init__(self, seed: int, step: int, shard: Shard, micro_step: int = 0):
        self.generator = torch.Generator().manual_seed(step_seed(seed, step))
        self.global_batch = shard.global_batch
        self.rows = shard.rows(micro_step)

    def frames(self, count: int) -> np.ndarray:
        """Indices into ``count`` frames: a permutation (repeated when the batch exceeds ``count``)."""
        rounds = -(-self.global_batch // count)
        order = torch.cat([torch.randperm(count, generator=self.generator) for _ in range(rounds)])
        return order[: self.global_batch][self.rows].numpy()

    def randint(self, high: int) -> torch.Tensor:
        """One integer in [0, high) per row."""
        return torch.randint(0, high, (self.global_batch,), generator=self.generator)[self.rows]

    def randn(self, shape: tuple[int, ...]) -> torch.Tensor:
        """Standard normal values of ``shape`` per row: (rows, *shape)."""
        return torch.randn((self.global_batch, *shape), generator=self.generator)[self.rows]
