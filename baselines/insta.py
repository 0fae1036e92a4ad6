"""INSTA: its test renders, its stage-1 RGB and normal renders, and running its binary.

INSTA's recorder (``src/recorder.cu``) reloads the test split and writes RGBA PNGs with a
transparent background to ``<actor>/experiments/<config>/debug/overlay/{00000..}.png``, named
by **index into the test split**, not by frame id. This adapter maps index ``i`` to the i-th
frame of ``transforms_test.json`` and composites on white. The number of renders must equal the
number of test frames.

Settings: ``experiment`` (the config name, default ``stage1_proxy``, what ``cabench synth``
writes), or ``path`` (the overlay folder itself); ``rgb_path`` / ``normal_path``: folders of
per-frame RGB and normal renders named by frame id (the reference pipeline's stage-1 input;
default: ``stage1/rgb`` and ``stage1/normal`` of a synthetic sequence); ``command``: INSTA's
program and its arguments as a list, run (no shell, ``timeout`` seconds) before the renders are
read when given, with the actor folder as working folder. Placeholders in ``command``: ``{root}``
(the actor folder, absolute), ``{sequence}``, ``{experiment}``, ``{test_json}`` (absolute). The
program must write the renders; which arguments a given INSTA build takes (``rta`` with its
config, scene and snapshot) is the user's to set.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from baselines.base import Adapter, MethodOutput, fill_path
from baselines.external import run_program
from baselines.outputs import numbered_files
from benchmark.datasets.base import Sequence
from benchmark.datasets.frames import FileFrames
from benchmark.io import FrameSource, open_frames
from metrics.errors import CabenchError

OVERLAY = Path("debug") / "overlay"


class INSTA(Adapter):
    key, row = "insta", "INSTA"
    path_settings = ("path", "rgb_path", "normal_path")

    def __init__(self, experiment: str = "stage1_proxy", path: str | None = None, command: list[str] | None = None,
                 timeout: float = 3600.0, rgb_path: str | None = None, normal_path: str | None = None,
                 name: str | None = None, split: str = "test"):
        super().__init__(name=name, split=split)
        if command is not None and (not isinstance(command, list) or not command):
            raise CabenchError("adapter 'insta': setting command must be a non-empty list (program, arguments...)")
        self.experiment, self.path, self.command, self.timeout = experiment, path, command, float(timeout)
        self.rgb_path, self.normal_path = rgb_path, normal_path

    def overlay_folder(self, sequence: Sequence) -> Path:
        if self.path:
            return fill_path(self.path, sequence, "path")
        if sequence.root is None:
            raise CabenchError(f"{sequence.name}: no sequence folder; set the INSTA adapter's path")
        return Path(sequence.root) / "experiments" / self.experiment / OVERLAY

    def run(self, sequence: Sequence) -> None:
        """Run INSTA's program as configured (see the module docstring)."""
        root = Path(sequence.root or ".").resolve()  # absolute: the program runs with cwd = root
        values = {"root": root, "sequence": sequence.name, "experiment": self.experiment,
                  "test_json": root / "transforms_test.json"}
        try:
            argv = [str(a).format(**values) for a in self.command]
        except (KeyError, IndexError, ValueError) as error:
            raise CabenchError(f"adapter 'insta': bad placeholder in command ({error})") from None
        run_program(argv, what=f"INSTA ({sequence.name})", timeout=self.timeout, cwd=root if root.is_dir() else None)

    def outputs(self, sequence: Sequence) -> MethodOutput:
        if sequence.split_ids(self.split) != sequence.split_ids("test"):
            raise CabenchError(f"adapter 'insta': INSTA renders the test split only, not {self.split!r}")
        ids = self.frame_ids(sequence)
        if self.command:
            self.run(sequence)
        folder = self.overlay_folder(sequence)
        files = numbered_files(folder, "{index:05d}.png", range(len(ids)), "index", f"INSTA renders ({sequence.name})")
        alignment = {"source": str(folder), "index": "test-split index -> frame id", "background": "white",
                     "ran": bool(self.command)}
        return MethodOutput(FileFrames(dict(zip(ids, files)), name=f"{self.name}:{folder}", fps=sequence.fps), alignment)

    def fingerprint(self, sequence: Sequence) -> str:
        """Stored renders: their files' stamps. With ``command``: the program's file and the
        sequence's frames, without running it (what else the program reads, such as its trained
        model, is not seen: rerun with ``--force`` after retraining)."""
        if not self.command:
            return super().fingerprint(sequence)
        program = shutil.which(str(self.command[0])) or self.command[0]
        return self.input_stamp(sequence, files=[program, Path(sequence.root or ".") / "transforms_test.json"])

    def stage1(self, sequence: Sequence, ids: list[int] | None = None) -> tuple[FrameSource, FrameSource]:
        """INSTA's RGB and normal renders, by frame id: the reference pipeline's stage-1 input."""
        sources = []
        for setting, value, extra in (("rgb_path", self.rgb_path, "stage1_rgb"),
                                      ("normal_path", self.normal_path, "stage1_normal")):
            if value:
                folder = fill_path(value, sequence, setting)
            elif extra in sequence.extras:
                folder = Path(sequence.extras[extra])
            else:
                raise CabenchError(f"{sequence.name}: no stage-1 renders; set the INSTA adapter's {setting}")
            source = open_frames(folder)
            wanted = sequence.frame_ids if ids is None else ids
            absent = sorted(set(wanted) - set(source.frame_ids))
            if absent:
                raise CabenchError(f"{folder}: no stage-1 render for frame {absent[0]} ({len(absent)} missing)")
            sources.append(source)
        return sources[0], sources[1]
