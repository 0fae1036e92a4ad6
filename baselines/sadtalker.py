"""SadTalker: run its ``inference.py`` or read its mp4, then map its 25 fps frames onto the ground truth.

SadTalker (``OpenTalker/SadTalker``) is run, from its repository, as::

    python inference.py --driven_audio AUDIO --source_image SRC --result_dir OUT --size 512
        --preprocess full --still --ref_pose GT.mp4 [--checkpoint_dir DIR] [--cpu]

and writes ``OUT/<YYYY_MM_DD_HH.MM.SS>.mp4`` at 25 fps with ``int(audio_seconds * 25)`` frames.
The ground truth's split is written as ``--ref_pose`` video (at the ground truth's fps) so the
head pose follows it; the source image is the first training frame unless ``source_image`` is
set; ``audio`` is the driving audio file; without it, the sequence's own audio (its video's audio
stream or its ``.wav``, :meth:`Sequence.audio`) is cut to the evaluated frames' span and written as
a 16-bit ``.wav`` in the work folder, so the generated speech lines up with the ground truth's frames. A fresh ``result_dir``
per run makes the newest mp4 unambiguous.

Frame-rate mapping: split frame ``k`` (time ``k / fps_gt``) takes video frame
``round(k * 25 / fps_gt)`` (nearest frame). Frame-count policy (``frame_count``), recorded:
``exact``: the video must have exactly the frames the mapping needs; ``trim``: extra frames at
the end are dropped; ``pad``: up to ``max_pad`` missing frames at the end repeat the last frame.
Sizes differ from the ground truth unless ``resize`` names a policy (recorded).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from baselines.base import Adapter, MethodOutput, fill_path
from baselines.external import run_program, work_folder
from baselines.outputs import check_resize_policy, match_size
from benchmark.datasets.base import Sequence
from benchmark.datasets.frames import RemappedFrames
from benchmark.io import VideoFile
from benchmark.stamps import tree_stamp
from metrics.errors import CabenchError, InputError

SADTALKER_FPS = 25.0
FRAME_COUNT_POLICIES = ("exact", "trim", "pad")


def map_frames(count_gt: int, fps_gt: float, count_video: int, fps_video: float, policy: str,
               max_pad: int, what: str) -> list[int]:
    """Video frame index for each of ``count_gt`` ground-truth frames (see the module docstring)."""
    wanted = [int(np.floor(k * fps_video / fps_gt + 0.5)) for k in range(count_gt)]
    needed = wanted[-1] + 1
    expected = int(round(count_gt * fps_video / fps_gt))
    if policy == "exact" and count_video != expected:
        raise InputError(f"{what}: the video has {count_video} frames, {expected} expected for {count_gt} "
                         f"ground-truth frames at {fps_gt:g} fps (set frame_count to trim or pad)")
    if count_video < needed:
        short = needed - count_video
        if policy != "pad" or short > max_pad:
            raise InputError(f"{what}: the video has {count_video} frames, {needed} needed for {count_gt} ground-truth "
                             f"frames at {fps_gt:g} fps" + (f" (more than max_pad = {max_pad} short)" if policy == "pad" else ""))
        wanted = [min(w, count_video - 1) for w in wanted]
    return wanted


class SadTalker(Adapter):
    key, row = "sadtalker", "SadTalker"
    path_settings = ("video", "repo", "audio", "source_image", "checkpoint_dir", "result_dir")

    def __init__(self, video: str | None = None, repo: str | None = None, python: str = sys.executable,
                 audio: str | None = None, source_image: str | None = None, size: int = 512,
                 preprocess: str = "full", still: bool = True, checkpoint_dir: str | None = None,
                 cpu: bool = False, result_dir: str | None = None, timeout: float = 3600.0,
                 frame_count: str = "exact", max_pad: int = 2, resize: str = "none", gt_fps: float | None = None,
                 name: str | None = None, split: str = "test"):
        super().__init__(name=name, split=split)
        if frame_count not in FRAME_COUNT_POLICIES:
            raise CabenchError(f"adapter 'sadtalker': frame_count {frame_count!r}; choose from {', '.join(FRAME_COUNT_POLICIES)}")
        if video is None and repo is None:
            raise CabenchError("adapter 'sadtalker': set video (a stored mp4) or repo (to run inference.py)")
        self.video, self.repo, self.python, self.audio = video, repo, python, audio
        self.source_image, self.size, self.preprocess, self.still = source_image, int(size), preprocess, bool(still)
        self.checkpoint_dir, self.cpu, self.result_dir, self.timeout = checkpoint_dir, bool(cpu), result_dir, float(timeout)
        self.frame_count, self.max_pad = frame_count, int(max_pad)
        self.resize, self.gt_fps = check_resize_policy(resize), gt_fps

    def command(self, audio: Path, source: Path, ref_pose: Path, result_dir: Path) -> list[str]:
        argv = [self.python, "inference.py", "--driven_audio", str(audio), "--source_image", str(source),
                "--result_dir", str(result_dir), "--size", str(self.size), "--preprocess", self.preprocess,
                "--ref_pose", str(ref_pose)]
        if self.still:
            argv.append("--still")
        if self.checkpoint_dir:
            argv += ["--checkpoint_dir", str(self.checkpoint_dir)]
        if self.cpu:
            argv.append("--cpu")
        return argv

    def _fps(self, sequence: Sequence) -> float:
        fps = self.gt_fps or sequence.fps
        if not fps:
            raise CabenchError(f"{sequence.name}: the ground truth records no frame rate; set gt_fps for SadTalker")
        return float(fps)

    def run(self, sequence: Sequence, ids: list[int]) -> Path:
        """Run inference.py; returns the mp4 it wrote."""
        import cv2

        from benchmark.io import write_frames

        repo = Path(self.repo)
        if not (repo / "inference.py").is_file():
            raise CabenchError(f"{repo / 'inference.py'}: SadTalker's inference script not found")
        if self.audio is not None:
            audio = fill_path(self.audio, sequence, "audio")
            if not audio.is_file():
                raise CabenchError(f"{audio}: SadTalker driving audio not found")
        elif sequence.audio_file is None:
            raise CabenchError(f"adapter 'sadtalker': running inference.py needs audio: {sequence.name} has none "
                               "(set audio, or give the sequence an audio track)")
        chosen = fill_path(self.result_dir, sequence, "result_dir") if self.result_dir else None
        with work_folder(chosen, "cabench-sadtalker-") as work:  # a temporary one is removed if this fails
            if self.audio is None:
                audio = self._sequence_audio(sequence, ids, work)
            if self.source_image:
                source = fill_path(self.source_image, sequence, "source_image")
                if not source.is_file():
                    raise CabenchError(f"{source}: SadTalker source image not found")
            else:
                first = sequence.split_ids("train")[:1] or sequence.frame_ids[:1]
                source = write_frames(work / "source", sequence.frames.read(first), ids=first)[0]
            ref_pose = work / "ref_pose.mp4"
            height, width = sequence.frames.size
            writer = cv2.VideoWriter(str(ref_pose), cv2.VideoWriter_fourcc(*"mp4v"), self._fps(sequence), (width, height))
            for batch in sequence.frames.batches(16, ids):
                for rgb in batch.rgb:
                    writer.write(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
            writer.release()
            results = work / "results"
            results.mkdir(exist_ok=True)
            run_program(self.command(audio.resolve(), Path(source).resolve(), ref_pose.resolve(), results.resolve()),
                        what=f"SadTalker ({sequence.name})", timeout=self.timeout, cwd=repo)
            videos = sorted(results.glob("*.mp4"), key=lambda p: p.stat().st_mtime)
            if not videos:
                raise CabenchError(f"{results}: SadTalker finished but wrote no mp4")
        return videos[-1]

    @staticmethod
    def _sequence_audio(sequence: Sequence, ids: list[int], work: Path) -> Path:
        """The sequence's audio over frames ``ids[0] .. ids[-1]`` as ``work/driving_audio.wav``."""
        from benchmark.datasets.audio import write_wav

        track = sequence.audio()
        positions = {frame: i for i, frame in enumerate(sequence.frame_ids)}
        start, stop = positions[ids[0]], positions[ids[-1]] + 1
        return write_wav(work / "driving_audio.wav", track.for_frames(start, stop), track.rate)

    def fingerprint(self, sequence: Sequence) -> str:
        """A stored video: its file's stamp. Running inference.py: the script, its checkpoints, the
        driving audio, the source image and the ground truth (its pose reference), without running."""
        if self.repo is None:
            return tree_stamp(fill_path(self.video, sequence, "video"))
        audio = fill_path(self.audio, sequence, "audio") if self.audio is not None else sequence.audio_file
        files = [Path(self.repo) / "inference.py", self.checkpoint_dir, audio,
                 fill_path(self.source_image, sequence, "source_image") if self.source_image else None]
        return self.input_stamp(sequence, files=files)

    def outputs(self, sequence: Sequence) -> MethodOutput:
        ids = self.frame_ids(sequence)
        fps_gt = self._fps(sequence)
        path = self.run(sequence, ids) if self.repo is not None else fill_path(self.video, sequence, "video")
        if not Path(path).is_file():
            raise InputError(f"{path}: SadTalker video not found")
        video = VideoFile(path)
        fps_video = video.fps or SADTALKER_FPS
        what = f"SadTalker {path}"
        wanted = map_frames(len(ids), fps_gt, len(video), fps_video, self.frame_count, self.max_pad, what)
        alignment = {"source": str(path), "fps": f"{fps_video:g} -> {fps_gt:g} (nearest frame)",
                     "frame_count": self.frame_count, "video_frames": len(video), "ran": self.repo is not None}
        mapped = RemappedFrames(video, dict(zip(ids, wanted)), name=f"{self.name}:{path}", fps=fps_gt)
        return MethodOutput(match_size(mapped, sequence.frames.size, self.resize, what, alignment), alignment)
