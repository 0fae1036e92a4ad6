"""The step sweep's quality: ``cabench time --quality DATA`` renders a dataset's held-out frames at every
sampler, LCM-LoRA setting and step count it times, and puts time and quality in one table.

Rendering is the ``consistentavatar`` adapter's (baselines/consistentavatar.py): the same inputs
(:meth:`~baselines.consistentavatar.ConsistentAvatar.render_inputs`: the split's stage-1 RGB and
normal renders, pose and expression), then ``reference.render_sequence`` with the checkpoint, seed 0,
the checkpoint's emotion labels (no ``emotion``: each frame's label from its expression), the full
model (no ablation), at the dataset's frame size. Only the sampler, the step count and the LCM-LoRA
switch (``lcm_lora``; reference/pipeline.py) change between rows. The split is ``test``
(``transforms_test.json`` of a ``cabench synth`` sequence).

Scores are those of ``cabench eval`` (:func:`benchmark.evaluation.evaluate`, canonical protocol, full
frames, no mask): PSNR in dB and SSIM on the frames composited on white, in [0, 1].

Rows (:data:`QUALITY_COLUMNS`, per frame; :func:`benchmark.results.sweep.sweep_table`, per (scheduler, lora,
steps)):
``lora`` is "on" where the checkpoint's LCM-LoRA samples (LCM by default) and "off" otherwise (LCM
with ``--lcm-lora off``, and every other sampler, which never uses it); ``label`` names the row as
the plots do ("lcm", "lcm (LoRA off)", "ddim"; :func:`benchmark.results.sweep.sweep_label`).

Statistics: the mean over frames with its block-bootstrap interval over the sequences and their
frames (:func:`benchmark.results.statistics.mean_interval`, the summaries' estimator), and for LCM
with the LoRA the paired difference to LCM without it at the same steps
(:func:`benchmark.results.statistics.paired_difference`, frame by frame), each estimate seeded
from its names (:func:`benchmark.results.statistics.estimate_seed`) so rows do not share draws.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from benchmark.results.sweep import METRICS
from metrics.errors import InputError

SPLIT = "test"
SEED = 0  # the consistentavatar adapter's default seed: frame i renders from SEED + i
QUALITY_COLUMNS = ("scheduler", "lora", "steps", "sequence", "frame", "psnr", "ssim")


@dataclass
class SweepInputs:
    """One sequence's render inputs (:meth:`ConsistentAvatar.render_inputs`) and its ground truth."""

    name: str
    ids: list[int]
    rgb: np.ndarray
    normal: np.ndarray
    pose: np.ndarray
    expression: np.ndarray
    truth: object  # FrameSource of the split's ground-truth frames


def load_inputs(path: str | Path, checkpoint: str) -> list[SweepInputs]:
    """Every sequence of the dataset at ``path`` (a sequence folder or a folder of them), read through
    the project's dataset reader and the adapter's input loading. Any problem (no such folder, not a
    dataset, no test split, no stage-1 renders) is an InputError naming ``--quality`` and the path.
    Nothing is loaded from ``checkpoint`` (the adapter is configured with it, as a run would be)."""
    from baselines.consistentavatar import ConsistentAvatar
    from benchmark.datasets import open_dataset
    from metrics.errors import CabenchError

    try:
        dataset = open_dataset(path)
        if not len(dataset):
            raise InputError(f"{path}: no sequences")
        adapter = ConsistentAvatar(checkpoint=checkpoint, split=SPLIT)
        inputs = []
        for sequence in dataset:
            ids, rgb, normal, pose, expression = adapter.render_inputs(sequence)
            inputs.append(SweepInputs(sequence.name, ids, rgb, normal, pose, expression, sequence.split_frames(SPLIT)))
    except CabenchError as error:
        message = str(error) if str(path) in str(error) else f"{path}: {error}"
        raise InputError(f"--quality {message}") from None
    return inputs


def render_rows(checkpoint, inputs: list[SweepInputs], rows: list[tuple[str, str, int]], device: str = "auto",
                dtype: str | None = None, batch_size: int = 8, progress: bool = False) -> pd.DataFrame:
    """Per-frame PSNR and SSIM (:data:`QUALITY_COLUMNS`) of every (scheduler, lora, steps) in ``rows``
    on every sequence, rendered as the adapter renders (module docstring)."""
    from tqdm.auto import tqdm

    from benchmark.evaluation import evaluate
    from benchmark.io import ArrayFrames
    from reference.render import load_pipeline, render_sequence

    pipe = load_pipeline(checkpoint, device=device, dtype=dtype, progress=False)
    parts = []
    jobs = [(row, sequence) for row in rows for sequence in inputs]
    for (scheduler, lora, steps), sequence in tqdm(jobs, desc="quality", disable=not progress):
        frames = render_sequence(pipe, sequence.rgb, sequence.normal, sequence.pose, sequence.expression,
                                 scheduler=scheduler, steps=steps, seed=SEED, device=device, batch_size=batch_size,
                                 lcm_lora=lora == "on")
        pred = ArrayFrames(frames, frame_ids=sequence.ids, name=f"{scheduler}/{lora}/{steps}:{sequence.name}")
        scores = evaluate(pred=pred, gt=sequence.truth, metrics=METRICS, progress=False).frames
        parts.append(pd.DataFrame({"scheduler": scheduler, "lora": lora, "steps": int(steps), "sequence": sequence.name,
                                   "frame": scores["frame"].astype(int), **{m: scores[m] for m in METRICS}}))
    return pd.concat(parts, ignore_index=True)[list(QUALITY_COLUMNS)]
