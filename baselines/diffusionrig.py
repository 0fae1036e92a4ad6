"""DiffusionRig: run its ``scripts/inference.py`` per driving frame, or read its stored outputs.

DiffusionRig's inference (``adobe-research/diffusion-rig``) is::

    python scripts/inference.py --source SRC --target TGT --output_dir OUT --modes MODE
        --model_path CKPT --meanshape personal_deca.lmdb/mean_shape.pkl --timestep_respacing ddim20

It writes ``OUT/{idx}_{mode}.png`` (256x256), ``idx`` running over the source images; each mode
transfers one attribute of the target (``pose``: global pose; ``exp``: expression and jaw;
``light``; ``latent``). For reenactment the adapter runs it once per frame of the split with the
identity image as source and the ground-truth frame (composited on white) as target, then
collects ``0_{mode}.png`` as ``{test_index}_{mode}.png`` in ``work_dir``. Stored outputs are
read from ``outputs`` as ``{index}_{mode}.png`` with ``index`` the position in the split
(``index = "frame_id"`` when they are named by frame id). Outputs of a run with a folder as
``--source`` are numbered in the folder's glob order, which is not sorted: rename them by
split position or frame id before reading them here.

Outputs are 256 px; they are resized to the ground truth's size only when ``resize`` names a
policy (``area``, ``bilinear``, ``bicubic``, ``lanczos``); the policy is recorded.
"""

from __future__ import annotations

import sys
from pathlib import Path

from baselines.base import Adapter, MethodOutput, fill_path
from baselines.external import run_program, work_folder
from baselines.outputs import check_resize_policy, match_size, numbered_files
from benchmark.datasets.base import Sequence
from benchmark.datasets.frames import FileFrames
from benchmark.io import write_frames
from metrics.errors import CabenchError

MODES = ("pose", "exp", "light", "latent", "exp_pose")


class DiffusionRig(Adapter):
    key, row = "diffusionrig", "DiffusionRig"
    path_settings = ("outputs", "repo", "model_path", "meanshape", "source", "work_dir")

    def __init__(self, outputs: str | None = None, repo: str | None = None, python: str = sys.executable,
                 model_path: str | None = None, meanshape: str | None = None, source: str | None = None,
                 mode: str = "exp", timestep_respacing: str = "ddim20", work_dir: str | None = None,
                 timeout: float = 600.0, resize: str = "none", index: str = "test_index",
                 progress: bool = True, name: str | None = None, split: str = "test"):
        super().__init__(name=name, split=split)
        if mode not in MODES:
            raise CabenchError(f"adapter 'diffusionrig': mode {mode!r}; choose from {', '.join(MODES)}")
        if index not in ("test_index", "frame_id"):
            raise CabenchError(f"adapter 'diffusionrig': index {index!r}; choose test_index or frame_id")
        if outputs is None and repo is None:
            raise CabenchError("adapter 'diffusionrig': set outputs (stored renders) or repo (to run inference.py)")
        if repo is not None and (model_path is None or meanshape is None):
            raise CabenchError("adapter 'diffusionrig': running inference.py needs model_path and meanshape")
        self.outputs_path, self.repo, self.python = outputs, repo, python
        self.model_path, self.meanshape, self.source = model_path, meanshape, source
        self.mode, self.respacing, self.work_dir = mode, timestep_respacing, work_dir
        self.timeout, self.resize, self.index = float(timeout), check_resize_policy(resize), index
        self.progress = bool(progress)

    def command(self, source: Path, target: Path, out: Path) -> list[str]:
        return [self.python, "scripts/inference.py", "--source", str(source), "--target", str(target),
                "--output_dir", str(out), "--modes", self.mode, "--model_path", str(self.model_path),
                "--meanshape", str(self.meanshape), "--timestep_respacing", self.respacing]

    def run(self, sequence: Sequence, ids: list[int], work: Path) -> Path:
        """Run inference.py once per frame; returns the folder of ``{test_index}_{mode}.png``."""
        from tqdm import tqdm

        repo = Path(self.repo)
        if not (repo / "scripts" / "inference.py").is_file():
            raise CabenchError(f"{repo / 'scripts' / 'inference.py'}: DiffusionRig's inference script not found")
        source = Path(self.source) if self.source else None
        if source is None:
            first = sequence.split_ids("train")[:1] or sequence.frame_ids[:1]
            source = write_frames(work / "source", sequence.frames.read(first), ids=first)[0]
        elif not source.exists():
            raise CabenchError(f"{source}: DiffusionRig source image not found")
        collected = work / "outputs"
        collected.mkdir(parents=True, exist_ok=True)
        for position, frame in enumerate(tqdm(ids, desc=f"DiffusionRig {sequence.name}", unit="frame",
                                                   disable=not self.progress)):
            target = write_frames(work / "targets", sequence.frames.read([frame]), ids=[frame])[0]
            out = work / "runs" / f"{frame:05d}"
            run_program(self.command(source.resolve(), target.resolve(), out.resolve()),
                        what=f"DiffusionRig ({sequence.name}, frame {frame})", timeout=self.timeout, cwd=repo)
            produced = out / f"0_{self.mode}.png"
            if not produced.is_file():
                raise CabenchError(f"{produced}: DiffusionRig wrote no output for frame {frame}")
            produced.replace(collected / f"{position}_{self.mode}.png")
        return collected

    def fingerprint(self, sequence: Sequence) -> str:
        """Stored outputs: their files' stamps. Running inference.py: the script, the model, the mean
        shape, the source image and the ground truth (the driving frames), without running."""
        if self.repo is None:
            return super().fingerprint(sequence)
        files = [Path(self.repo) / "scripts" / "inference.py", self.model_path, self.meanshape, self.source]
        return self.input_stamp(sequence, files=files)

    def outputs(self, sequence: Sequence) -> MethodOutput:
        ids = self.frame_ids(sequence)
        what = f"DiffusionRig ({sequence.name})"
        if self.repo is not None:
            chosen = fill_path(self.work_dir, sequence, "work_dir") if self.work_dir else None
            with work_folder(chosen, "cabench-diffusionrig-") as work:  # a temporary one is removed if this fails
                folder, index = self.run(sequence, ids, work), "test_index"
        else:
            folder, index = fill_path(self.outputs_path, sequence, "outputs"), self.index
        keys = list(range(len(ids))) if index == "test_index" else ids
        files = numbered_files(folder, f"{{index}}_{self.mode}.png", keys, "index", what)
        source = FileFrames(dict(zip(ids, files)), name=f"{self.name}:{folder}", fps=sequence.fps)
        alignment = {"source": str(folder), "mode": self.mode, "index": index, "ran": self.repo is not None}
        return MethodOutput(match_size(source, sequence.frames.size, self.resize, what, alignment), alignment)
