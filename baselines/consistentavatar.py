"""ConsistentAvatar: the reference pipeline run on a sequence, one row per ablation, or its stored renders.

Rendering calls ``reference.render_sequence(checkpoint, rgb, normal, pose, expression,
emotion=None, ablation=None, scheduler="lcm", steps=4, seed=0, device="cpu", batch_size=8,
progress=False) -> uint8 (T, H, W, 3)`` with the stage-1 RGB and normal renders of the split's
frames (INSTA's, read through the INSTA adapter's ``stage1``; a synthetic sequence carries its
own proxy) and the sequence's ``pose`` (T, 6) and ``expression`` annotations. The reference
package is imported only when rendering. With ``outputs`` set, stored renders named by frame
id (``pattern``, default ``{id:05d}.png``) are read instead.

Ablations (each a row of the paper's tables): ``wo_stage2``, ``wo_lcm``, ``wo_normal``,
``wo_emotion``, ``wo_aligned_tsd``.
"""

from __future__ import annotations

import importlib
import time

import numpy as np

from baselines.base import Adapter, MethodOutput, register_adapter
from baselines.folders import FolderAdapter
from baselines.insta import INSTA
from benchmark.datasets.base import Sequence
from benchmark.io import ArrayFrames
from benchmark.stamps import text_stamp
from metrics.device import check_device, resolve_device
from metrics.errors import CabenchError

ABLATION_ROWS = {
    None: "ConsistentAvatar",
    "wo_stage2": "ConsistentAvatar w/o stage2",
    "wo_lcm": "ConsistentAvatar w/o LCM",
    "wo_normal": "ConsistentAvatar w/o normal",
    "wo_emotion": "ConsistentAvatar w/o emotion text",
    "wo_aligned_tsd": "ConsistentAvatar w/o aligned TSD",
}


@register_adapter
class ConsistentAvatar(Adapter):
    key, row = "consistentavatar", "ConsistentAvatar"
    path_settings = ("checkpoint", "outputs", "stage1_rgb", "stage1_normal")
    hub_settings = ("checkpoint",)

    def __init__(self, checkpoint: str | None = None, outputs: str | None = None, pattern: str = "{id:05d}.png",
                 ablation: str | None = None, scheduler: str = "lcm", steps: int = 4, seed: int = 0,
                 device: str = "cpu", batch_size: int = 8, emotion: str | None = None,
                 stage1_rgb: str | None = None, stage1_normal: str | None = None, progress: bool = False,
                 name: str | None = None, split: str = "test"):
        if ablation not in ABLATION_ROWS:
            raise CabenchError(f"adapter 'consistentavatar': ablation {ablation!r}; choose from "
                               f"{', '.join(str(a) for a in ABLATION_ROWS if a)} or leave it unset")
        if checkpoint is None and outputs is None:
            raise CabenchError("adapter 'consistentavatar': set checkpoint (to render) or outputs (stored renders)")
        super().__init__(name=name or ABLATION_ROWS[ablation], split=split)
        self.checkpoint, self.outputs_path, self.pattern, self.ablation = checkpoint, outputs, pattern, ablation
        self.scheduler, self.steps, self.seed = scheduler, int(steps), int(seed)
        self.device = check_device(device, "adapter 'consistentavatar': setting device")
        self.batch_size, self.emotion, self.progress = int(batch_size), emotion, bool(progress)
        self.stage1_source = INSTA(rgb_path=stage1_rgb, normal_path=stage1_normal)

    def outputs(self, sequence: Sequence) -> MethodOutput:
        if self.outputs_path is not None:
            folder = FolderAdapter(self.outputs_path, pattern=self.pattern, name=self.name, split=self.split)
            stored = folder.outputs(sequence)
            return MethodOutput(stored.frames, {**stored.alignment, "rendered": False, "ablation": self.ablation})
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

    def render(self, sequence: Sequence) -> MethodOutput:
        try:
            reference = importlib.import_module("reference")
            render_sequence = reference.render_sequence
        except (ImportError, AttributeError):
            raise CabenchError("adapter 'consistentavatar': the reference pipeline (reference.render_sequence) is not "
                               "available in this installation; set outputs to read stored renders") from None
        ids = self.frame_ids(sequence)
        rgb_source, normal_source = self.stage1_source.stage1(sequence, ids)
        rgb = rgb_source.read(ids).rgb
        normal = normal_source.read(ids).rgb
        pose = sequence.annotation("pose", ids).astype(np.float32)
        expression = sequence.annotation("expression", ids).astype(np.float32)
        device = str(resolve_device(self.device, "adapter 'consistentavatar': setting device"))
        start = time.perf_counter()
        out = render_sequence(self.checkpoint, rgb, normal, pose, expression, emotion=self.emotion,
                              ablation=self.ablation, scheduler=self.scheduler, steps=self.steps, seed=self.seed,
                              device=device, batch_size=self.batch_size, progress=self.progress)
        elapsed = time.perf_counter() - start
        out = np.asarray(out)
        if out.dtype != np.uint8 or out.shape[0] != len(ids) or out.ndim != 4 or out.shape[-1] != 3:
            raise CabenchError(f"reference.render_sequence returned {out.dtype} {out.shape}, expected uint8 "
                               f"({len(ids)}, H, W, 3) for {sequence.name}")
        alignment = {"rendered": True, "checkpoint": str(self.checkpoint), "ablation": self.ablation,
                     "scheduler": self.scheduler, "steps": self.steps, "seed": self.seed}
        frames = ArrayFrames(out, frame_ids=ids, name=f"{self.name}:{sequence.name}", fps=sequence.fps)
        return MethodOutput(frames, alignment, seconds_per_frame=elapsed / len(ids))
