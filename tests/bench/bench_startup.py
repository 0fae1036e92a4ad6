"""Start-up cost: a fully reused `cabench eval` against the imports of the heavy libraries, side by side.

Run: ``python tests/bench/bench_startup.py [--frames 120] [--repeats 3]``. It writes a ground-truth video and
a method's video (``--frames`` frames of 176x144, a moving crop of scikit-image's astronaut photo plus
noise) to a temporary folder, runs ``cabench eval --metrics l2,psnr,ssim`` once to store every number,
then alternates, ``--repeats`` times: (a) a fresh ``python -c "import torch, torchvision, diffusers,
lpips, cv2, dlib"``, (b) the same ``cabench eval`` again (fully reused: its outputs are up to date).
Each child's CPU time (user + system, from ``getrusage``; steadier than wall time on a busy machine)
and wall time are measured; the minimum of each is printed with the ratio (b) / (a).
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

IMPORTS = "import torch, torchvision, diffusers, lpips, cv2, dlib"


def write_videos(folder: Path, frames: int) -> tuple[Path, Path]:
    import cv2
    import numpy as np
    from skimage import data

    photo = data.astronaut()
    gt = np.stack([cv2.resize(photo[20 + i % 100: 340 + i % 100, 60:451], (176, 144)) for i in range(frames)])
    pred = np.clip(gt + np.random.default_rng(0).normal(0, 8, gt.shape), 0, 255).astype(np.uint8)
    paths = folder / "gt.mp4", folder / "pred.mp4"
    for path, video in zip(paths, (gt, pred)):
        writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 25, (176, 144))
        for frame in video:
            writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
        writer.release()
    return paths


def timed(command: list[str]) -> tuple[float, float]:
    """(CPU seconds, wall seconds) of a child process run to completion (it must succeed)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime), wall


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=120)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as temporary:
        gt, pred = write_videos(Path(temporary), args.frames)
        evaluate = [sys.executable, "-m", "benchmark", "eval", "--gt", str(gt), "--pred", f"ours={pred}",
                    "--metrics", "l2,psnr,ssim", "--out", str(Path(temporary) / "run"), "--quiet"]
        subprocess.run(evaluate, check=True, stdout=subprocess.DEVNULL)  # stores every number
        imports, reused = [], []
        for _ in range(args.repeats):
            imports.append(timed([sys.executable, "-c", IMPORTS]))
            reused.append(timed(evaluate))
    cpu_a, wall_a = min(c for c, _ in imports), min(w for _, w in imports)
    cpu_b, wall_b = min(c for c, _ in reused), min(w for _, w in reused)
    print(f"python -c '{IMPORTS}': {cpu_a:.2f} s CPU, {wall_a:.2f} s wall (min of {args.repeats})")
    print(f"fully reused cabench eval ({args.frames} frames, l2,psnr,ssim): {cpu_b:.2f} s CPU, {wall_b:.2f} s wall")
    print(f"ratio: {cpu_b / cpu_a:.2f} of the imports' CPU time, {wall_b / wall_a:.2f} of their wall time")
    return 0


if __name__ == "__main__":
    sys.exit(main())
