"""ConsistentAvatar: the reference pipeline run on a sequence, one row per ablation, or its stored renders.

Rendering uses ``reference.load_pipeline(checkpoint, device=, dtype=, ablation=)`` in :meth:`load`
(with one warm-up batch through every stage), then ``reference.render_sequence(pipeline, rgb,
normal, pose, expression, emotion=, ablation=, ablation_mode=, scheduler=, steps=, seed=,
batch_size=, progress=) -> uint8 (T, H, W, 3)`` with the stage-1 RGB and normal renders of the
split's frames (INSTA's, read through the INSTA adapter's ``stage1``; a synthetic sequence carries
its own proxy) and the sequence's ``pose`` (T, 6) and ``expression`` annotations. ``seconds_per_frame`` is the wall time of
``render_sequence`` alone: loading and warm-up happen in :meth:`load`, before the clock starts.
With ``across_processes = true``, under ``accelerate launch`` / ``torchrun`` a script that runs the
adapter on every process with the same sequence renders its frames across the processes and gets
all of them on each (see ``reference.render``); it is off by default because ``cabench run``
already gives each process its own (sequence, method) pairs. The reference package is imported only when rendering. With ``outputs``
set, stored renders named by frame id (``pattern``, default ``{id:05d}.png``) are read instead.

Settings: ``emotion`` is one label for every frame (e.g. ``"happy"``; default neutral); ``steps``
defaults to the sampler's usual count (LCM 10, as the paper samples); ``device = "auto"`` takes
accelerate's device for the process.

Ablations (each a row of the paper's tables): ``wo_stage2``, ``wo_lcm``, ``wo_normal``,
``wo_emotion``, ``wo_aligned_tsd`` (the same trained model as ``wo_stage2``, under Table 2's name).
By default a row renders the variant trained without that input (reference/ablations.py), and a
checkpoint without it is an error; ``ablation_mode = "zero-input"`` asks for the inference-time
switch on the full model instead, a diagnosis whose row name says so.
"""

from __future__ import annotations

import time

import numpy as np

from baselines.base import Adapter, MethodOutput
from baselines.folders import FolderAdapter
from baselines.insta import INSTA
from benchmark.datasets.base import Sequence
from benchmark.io import ArrayFrames
from benchmark.stamps import text_stamp
from metrics.device import check_device
from metrics.errors import CabenchError

ABLATION_ROWS = {
    None: "ConsistentAvatar",
    "wo_stage2": "ConsistentAvatar w/o stage2",
    "wo_lcm": "ConsistentAvatar w/o LCM",
    "wo_normal": "ConsistentAvatar w/o normal",
    "wo_emotion": "ConsistentAvatar w/o emotion text",
    "wo_aligned_tsd": "ConsistentAvatar w/o aligned TSD",
}
ABLATION_MODES = ("trained", "zero-input")
ZERO_INPUT_SUFFIX = " (zero-input switch)"


def row_name(ablation: str | None, ablation_mode: str = "trained") -> str:
    """The table row of an ablation; the inference-time switch is labelled as such."""
    return ABLATION_ROWS[ablation] + (ZERO_INPUT_SUFFIX if ablation_mode == "zero-input" and ablation else "")


class ConsistentAvatar(Adapter):
    key, row = "consistentavatar", "ConsistentAvatar"
    path_settings = ("checkpoint", "outputs", "stage1_rgb", "stage1_normal")
    hub_settings = ("checkpoint",)

    def __init__(self, checkpoint: str | None = None, outputs: str | None = None, pattern: str = "{id:05d}.png",
                 ablation: str | None = None, ablation_mode: str = "trained", scheduler: str = "lcm",
                 steps: int | None = None, seed: int = 0, device: str = "auto", dtype: str | None = None,
                 batch_size: int = 8, emotion: str | None = None,
                 stage1_rgb: str | None = None, stage1_normal: str | None = None, progress: bool = False,
                 across_processes: bool = False, name: str | None = None, split: str = "test"):
        if ablation not in ABLATION_ROWS:
            raise CabenchError(f"adapter 'consistentavatar': ablation {ablation!r}; choose from "
                               f"{', '.join(str(a) for a in ABLATION_ROWS if a)} or leave it unset")
        if ablation_mode not in ABLATION_MODES:
            raise CabenchError(f"adapter 'consistentavatar': ablation_mode {ablation_mode!r}; choose from "
                               f"{', '.join(ABLATION_MODES)}")
        if checkpoint is None and outputs is None:
            raise CabenchError("adapter 'consistentavatar': set checkpoint (to render) or outputs (stored renders)")
        if emotion is not None and not isinstance(emotion, str):
            raise CabenchError(f"adapter 'consistentavatar': emotion must be one label (a string), got {emotion!r}")
        super().__init__(name=name or row_name(ablation, ablation_mode), split=split)
        self.checkpoint, self.outputs_path, self.pattern, self.ablation = checkpoint, outputs, pattern, ablation
        self.ablation_mode = ablation_mode
        self.scheduler, self.steps, self.seed = scheduler, None if steps is None else int(steps), int(seed)
        self.device = check_device(device, "adapter 'consistentavatar': setting device")
        self.dtype = dtype
        self.batch_size, self.emotion, self.progress = int(batch_size), emotion, bool(progress)
        self.across_processes = bool(across_processes)
        self.stage1_source = INSTA(rgb_path=stage1_rgb, normal_path=stage1_normal)
        self.pipeline = None

    def _reference(self):
        try:
            from reference import load_pipeline, render_sequence, warm_up  # imported only to render
            return load_pipeline, render_sequence, warm_up
        except (ImportError, AttributeError):
            raise CabenchError("adapter 'consistentavatar': the reference pipeline (reference.render_sequence) is not "
                               "available in this installation; set outputs to read stored renders") from None

    def load(self) -> None:
        """Load the pipeline (the ablation's trained variant, unless ``ablation_mode = "zero-input"``) and
        run one warm-up batch, so that the timed render excludes both."""
        if self.outputs_path is not None or self.pipeline is not None:
            return
        load_pipeline, _, warm_up = self._reference()
        trained = self.ablation if self.ablation_mode == "trained" else None
        self.pipeline = load_pipeline(self.checkpoint, device=self.device, dtype=self.dtype, ablation=trained,
                                      progress=self.progress)
        warm_up(self.pipeline, self.batch_size, self.scheduler)

    def outputs(self, sequence: Sequence) -> MethodOutput:
        if self.outputs_path is not None:
            folder = FolderAdapter(self.outputs_path, pattern=self.pattern, name=self.name, split=self.split)
            stored = folder.outputs(sequence)
            return MethodOutput(stored.frames, {**stored.alignment, "rendered": False, "ablation": self.ablation,
                                                "ablation_mode": self.ablation_mode})
        return self.render(sequence)

    def fingerprint(self, sequence: Sequence) -> str:
        """Stored renders: their files' stamps. Rendering: the checkpoint's files, the stage-1 RGB and
        normal renders and the pose and expression annotations it reads, without rendering."""
        if self.outputs_path is not None:
            return super().fingerprint(sequence)
        ids = self.frame_ids(sequence)
        rgb, normal = self.stage1_source.stage1(sequence, ids)
        return text_stamp(self.input_stamp(sequence, files=[self.checkpoint], annotations=("pose", "expression")),
                          rgb.content_key(ids), normal.content_key(ids))

    def render_inputs(self, sequence: Sequence) -> tuple[list[int], np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """What :meth:`render` gives ``render_sequence`` for the split's frames: (frame ids, stage-1 RGB
        and normal uint8 (T,H,W,3), pose float32 (T,6), expression float32 (T,100)), read without
        loading the pipeline (``cabench time --quality`` renders the same inputs at other settings)."""
        ids = self.frame_ids(sequence)
        rgb_source, normal_source = self.stage1_source.stage1(sequence, ids)
        rgb = rgb_source.read(ids).rgb
        normal = normal_source.read(ids).rgb
        pose = sequence.annotation("pose", ids).astype(np.float32)
        expression = sequence.annotation("expression", ids).astype(np.float32)
        return ids, rgb, normal, pose, expression

    def render(self, sequence: Sequence) -> MethodOutput:
        self.load()
        _, render_sequence, _ = self._reference()
        ids, rgb, normal, pose, expression = self.render_inputs(sequence)
        start = time.perf_counter()
        out = render_sequence(self.pipeline, rgb, normal, pose, expression, emotion=self.emotion,
                              ablation=self.ablation, ablation_mode=self.ablation_mode, scheduler=self.scheduler,
                              steps=self.steps, seed=self.seed, device=self.device, batch_size=self.batch_size,
                              progress=self.progress, across_processes=self.across_processes)
        elapsed = time.perf_counter() - start
        out = np.asarray(out)
        if out.dtype != np.uint8 or out.shape[0] != len(ids) or out.ndim != 4 or out.shape[-1] != 3:
            raise CabenchError(f"reference.render_sequence returned {out.dtype} {out.shape}, expected uint8 "
                               f"({len(ids)}, H, W, 3) for {sequence.name}")
        alignment = {"rendered": True, "checkpoint": str(self.checkpoint), "ablation": self.ablation,
                     "ablation_mode": self.ablation_mode, "scheduler": self.scheduler, "steps": self.steps,
                     "seed": self.seed, "emotion": self.emotion}
        frames = ArrayFrames(out, frame_ids=ids, name=f"{self.name}:{sequence.name}", fps=sequence.fps)
        return MethodOutput(frames, alignment, seconds_per_frame=elapsed / len(ids))
