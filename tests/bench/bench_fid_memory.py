"""Peak memory of a FID run against its number of frames (not a pytest suite: a measurement).

Run: ``python tests/bench/bench_fid_memory.py --frames 250 --frames 2000 --weights PATH``. For each
count it writes a ground-truth folder and a method folder of that many 176x144 PNG frames, runs
``python -m benchmark eval --metrics fid --protocol pytorch-fid --set-resamples 0`` on them in a
fresh process, and prints that process's peak resident memory (``ru_maxrss``) and wall time.

Both sequences cycle through ``--distinct`` different frames (the synthetic dataset's, and a
blurred copy), so the Inception network runs once per distinct frame (features are cached by
content); every one of the N frames is still read, prepared by the protocol, hashed, looked up and
streamed into the float64 statistics. This keeps the measurement to minutes on a CPU: what it
measures is what grows with N (reading, the per-frame feature entries, the statistics), not the
network's per-batch memory, which is the same for every batch.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def write_sequences(root: Path, frames: int, distinct: int) -> tuple[Path, Path]:
    import cv2

    from benchmark.datasets.synthetic import generate
    from benchmark.io import write_frames

    base = []
    for item in generate(distinct, 176, seed=5):
        rgba = item.rgba.astype(np.float64)
        alpha = rgba[..., 3:] / 255
        base.append(np.rint(rgba[..., :3] * alpha + 255 * (1 - alpha)).astype(np.uint8)[16:160])
    blurred = [cv2.GaussianBlur(frame, (0, 0), 2.0) for frame in base]
    gt, pred = root / "gt", root / "pred"
    for folder, pool in ((gt, base), (pred, blurred)):
        for start in range(0, frames, 250):  # write_frames holds one array: in chunks of 250
            count = min(250, frames - start)
            write_frames(folder, np.stack([pool[(start + i) % distinct] for i in range(count)]),
                         ids=range(start, start + count))
    return gt, pred


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, action="append", required=True)
    parser.add_argument("--distinct", type=int, default=16)
    parser.add_argument("--weights", required=True)
    args = parser.parse_args()
    for frames in args.frames:
        with tempfile.TemporaryDirectory() as scratch:
            root = Path(scratch)
            gt, pred = write_sequences(root, frames, args.distinct)
            command = [sys.executable, "-c",
                       "import resource, sys; from benchmark.cli import main; status = main(sys.argv[1:]); "
                       "print('maxrss_kib', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss); sys.exit(status)",
                       "eval", "--gt", str(gt), "--pred", f"blurred={pred}", "--metrics", "fid", "--protocol",
                       "pytorch-fid", "--set-resamples", "0", "--fid-weights", args.weights, "--out",
                       str(root / "run"), "--quiet", "--no-plots"]
            start = time.perf_counter()
            output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
            seconds = time.perf_counter() - start
            rss = int(output.split("maxrss_kib")[1].split()[0]) / 1024
            value = [line for line in output.splitlines() if "| blurred |" in line]
            print(f"frames {frames}: peak RSS {rss:.0f} MiB, {seconds:.0f} s; {value[0] if value else ''}", flush=True)


if __name__ == "__main__":
    main()
