"""Write the set-level calibration inputs for the reference implementations (not a test).

Run with the project's environment::

    python tests/calibration/set_metrics_inputs.py --work /tmp/setcal

It writes ``<work>/<case>/real/NNNN.png`` and ``<work>/<case>/fake/NNNN.png`` for every case of
``tests/set_metrics_recipe.py``, the real photos the batch-norm statistics are measured on
(``bn_frames.npy``) and the recipe's random weights without those statistics (``weights.npz``).
``run_set_references.py`` then runs each reference implementation on them in its own environment.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from PIL import Image

sys.path[:0] = [str(Path(__file__).resolve().parents[1]), str(Path(__file__).resolve().parents[2])]  # tests/, the project

from set_metrics_recipe import SET_CASES, bn_frames, inception_weights, make_set  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", required=True, type=Path)
    args = parser.parse_args()
    from metrics.inception import FIDInception
    from metrics.weights import meta_state

    shapes = {key: tuple(value.shape) for key, value in meta_state(FIDInception).items()}
    args.work.mkdir(parents=True, exist_ok=True)
    np.savez(args.work / "weights.npz", **inception_weights(shapes))
    np.save(args.work / "bn_frames.npy", bn_frames())
    for case in SET_CASES:
        real, fake = make_set(case)
        for role, frames in (("real", real), ("fake", fake)):
            folder = args.work / case.name / role
            folder.mkdir(parents=True, exist_ok=True)
            for index, frame in enumerate(frames):
                Image.fromarray(frame).save(folder / f"{index:04d}.png")
        print(case.name, real.shape, fake.shape)


if __name__ == "__main__":
    main()
