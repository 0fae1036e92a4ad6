"""The shipped checkpoint's LCM sampling against its DDIM-50 teacher, stage by stage (docs/reference-lcm.md).

    PYTHONPATH=. python docs/measurements/lcm_stages.py CHECKPOINT DATA OUT.csv

DATA: the demo's sequences (`cabench synth ... --motion v2`, docs/reference.md). For the held-out test frames of
each sequence, at the model's size (64 px; inputs and ground truth resized by ``reference.render.frames_to_tensor``,
as ``render_sequence`` resizes its inputs), with one generator per frame and stage (TSDM: seed 100 + i, FCSD:
seed 7 + i), so that every sampler starts each stage from the same initial noise:

- ``tsdm``: the aligned TSD of DDIM 50 (LoRA off) and of LCM 1/2/4/10 with the TSDM's LCM-LoRA on and off,
  its PSNR to the TSD of the ground truth;
- ``fcsd (teacher's guide)``: the FCSD given the teacher's aligned TSD (DDIM 50), DDIM 50 (the teacher) and
  LCM 1/2/4/10 with the FCSD's LCM-LoRA on and off, PSNR to the ground truth and to the teacher's frames;
- ``both stages``: each LCM setting in both stages (TSDM and FCSD, LoRAs on or off together), and the
  teacher in both, PSNR to the ground truth.

Writes one row per (sequence, frame, stage, row, reference) and prints each row's mean with its block-bootstrap
interval and the paired differences (LoRA on minus off; minus the teacher), the project's estimators.
"""

import sys

import numpy as np
import pandas as pd
import torch

import metrics.image
from baselines.consistentavatar import ConsistentAvatar
from benchmark.datasets import open_dataset
from benchmark.results.statistics import mean_interval, paired_difference
from reference.render import frames_to_tensor, load_pipeline
from reference.schedulers import make_scheduler

STEPS = (1, 2, 4, 10)


def psnr(a: torch.Tensor, b: torch.Tensor) -> np.ndarray:
    return metrics.image.psnr(a.double(), b.double()).numpy()


def measure(checkpoint: str, data: str) -> pd.DataFrame:
    pipe = load_pipeline(checkpoint, "cpu")
    adapter = ConsistentAvatar(checkpoint=checkpoint)
    rows = []
    for sequence in open_dataset(data).sequences:
        rows += measure_sequence(pipe, adapter, sequence)
        print(sequence.name, "measured", file=sys.stderr, flush=True)
    return pd.DataFrame(rows)


@torch.no_grad()
def measure_sequence(pipe, adapter, sequence) -> list[dict]:
    size = int(pipe.vae.config.sample_size)
    context = pipe.encode_empty_prompt()
    ids = adapter.frame_ids(sequence)
    rgb_frames, normal_frames = adapter.stage1_source.stage1(sequence, ids)
    rgb, normal = frames_to_tensor(rgb_frames.read(ids).rgb, size), frames_to_tensor(normal_frames.read(ids).rgb, size)
    pose = torch.from_numpy(sequence.annotation("pose", ids).astype(np.float32))
    expression = torch.from_numpy(sequence.annotation("expression", ids).astype(np.float32))
    truth = frames_to_tensor(sequence.frames.read(ids).rgb, size)
    emotions = pipe.embed_emotions(pipe.emotion_labels(None, len(ids), expression))
    rows = []

    def generators(seed):
        return [torch.Generator().manual_seed(seed + i) for i in range(len(ids))]

    def add(stage, row, reference, values):
        rows.extend(dict(sequence=sequence.name, frame=frame, stage=stage, row=row, reference=reference, psnr=value)
                    for frame, value in zip(ids, values))

    def tsd(scheduler, steps, lora):
        return pipe.align_tsd(pipe.tsd_of(rgb), pose, expression, steps, generators(100),
                              make_scheduler(scheduler, pipe.scheduler.config), context, lcm_lora=lora)

    def frames(guide, scheduler, steps, lora):
        control, f_d = pipe.fcsd_condition(normal, guide, pose, expression, emotions)
        latents = pipe.sample_fcsd(control, f_d, steps, generators(7), make_scheduler(scheduler, pipe.scheduler.config),
                                   context, lcm_lora=lora)
        return pipe.decode_latents(latents).clamp(0, 1)

    truth_tsd = pipe.tsd_of(truth)
    guides = {"ddim50": tsd("ddim", 50, False)}
    for steps in STEPS:
        for lora in (True, False):
            guides[f"lcm{steps} lora {'on' if lora else 'off'}"] = tsd("lcm", steps, lora)
    for name, guide in guides.items():
        add("tsdm", name, "ground truth's tsd", psnr(guide, truth_tsd))
    teacher = frames(guides["ddim50"], "ddim", 50, False)
    for stage in ("fcsd (teacher's guide)", "both stages"):
        add(stage, "ddim50", "ground truth", psnr(teacher, truth))
    for steps in STEPS:
        for lora in (True, False):
            name = f"lcm{steps} lora {'on' if lora else 'off'}"
            student = frames(guides["ddim50"], "lcm", steps, lora)
            add("fcsd (teacher's guide)", name, "ground truth", psnr(student, truth))
            add("fcsd (teacher's guide)", name, "teacher", psnr(student, teacher))
            add("both stages", name, "ground truth", psnr(frames(guides[name], "lcm", steps, lora), truth))
    return rows


def summary(table: pd.DataFrame) -> list[str]:
    def series(stage, row, reference):
        part = table[(table.stage == stage) & (table.row == row) & (table.reference == reference)]
        return [part[part.sequence == name].sort_values("frame").psnr.to_numpy() for name in sorted(part.sequence.unique())]

    lines = []
    for (stage, reference), part in table.groupby(["stage", "reference"], sort=False):
        for row in part.row.unique():
            mean = mean_interval(series(stage, row, reference))
            line = f"{stage:24s} {reference:20s} {row:16s} {mean.mean:6.2f} [{mean.low:.2f}, {mean.high:.2f}]"
            if row.endswith("lora on"):
                d = paired_difference(series(stage, row, reference), series(stage, row.replace("on", "off"), reference))
                line += f"  on-off {d.mean:+.2f} [{d.low:+.2f}, {d.high:+.2f}]"
            if reference == "ground truth" and row != "ddim50":
                d = paired_difference(series(stage, row, reference), series(stage, "ddim50", reference))
                line += f"  -ddim50 {d.mean:+.2f} [{d.low:+.2f}, {d.high:+.2f}]"
            lines.append(line)
    return lines


if __name__ == "__main__":
    checkpoint, data, out = sys.argv[1:4]
    torch.set_num_threads(1)
    table = measure(checkpoint, data)
    table.to_csv(out, index=False, float_format="%.4f")
    print("\n".join(summary(table)))
