"""Make the AKD calibration table (``tests/calibration/akd.csv`` + ``akd.json``) with face_alignment and pose-evaluation themselves.

Not a test and not part of the package: how the table was made. The references run in their own
environment (torch, numpy, scipy, scikit-image, opencv-python-headless, pandas, and face_alignment
installed from a checkout of 1adrianb/face-alignment at the commit pose-evaluation pins; no cabench)::

    python tests/calibration/run_face_alignment.py --face-alignment-commit SHA --pose-evaluation /path/pose-evaluation \\
        --pose-evaluation-commit SHA --ref-python /work/ref/face-alignment/.venv/bin/python --work /tmp/akd-calibration

Steps: (1, project python) the recipe's frames (``tests/arcface_recipe.py``), dlib's ground-truth
boxes; (2, reference python) a random FAN(4) from face_alignment's own ``models.FAN`` after
``torch.manual_seed(0)``, its state dict saved as ``2DFAN-4.pth.tar`` where ``FaceAlignment`` looks for
it; per frame ``FaceAlignment(LandmarksType._2D, device='cpu', flip_input=False, face_detector='folder')
.get_landmarks(frame, detected_faces=[box])[0]`` for the ground truth and the prediction, written as the
two pickles ``extract.py --type face_pose`` writes (file_name, frame_number, value), and ``cmp_kp.py``
run on them; (3) the table: per-frame values and cmp_kp.py's printed average.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent

SHIMS = [
    "face boxes: dlib's (the ground truth's, for both frames), given as detected_faces; the FaceAlignment object "
    "is made with face_detector='folder' (no detector weights) and device='cpu' instead of extract.py's defaults "
    "(sfd, cuda)",
    "extract.py's extract_face_pose loop is not run (it calls get_landmarks(frame) without boxes); the same "
    "DataFrame (file_name, frame_number, value = get_landmarks(...)[0]) is built and pickled, then cmp_kp.py runs "
    "unchanged on the two pickles",
    "per-frame values: cmp_kp.py's expression np.mean(np.abs(gt - generated)) evaluated per frame on the same "
    "landmarks (it prints only the average, which is checked equal to their mean)",
]


def prepare(work: Path) -> dict:
    sys.path[:0] = [str(HERE.parent.parent), str(HERE.parent)]
    import hashlib

    import numpy as np
    import torch
    from arcface_recipe import AKD_CASES, AKD_FRAMES, akd_boxes, case_frames, fan_weights, state_digest

    cases = {}
    for name in AKD_CASES:
        gt, pred = (frames[:AKD_FRAMES] for frames in case_frames(name))
        np.save(work / f"{name}_gt.npy", gt)
        np.save(work / f"{name}_pred.npy", pred)
        cases[name] = {"boxes": akd_boxes(gt), "frames_sha256": hashlib.sha256(gt.tobytes() + pred.tobytes()).hexdigest()}
    ours = fan_weights(work / "ours.pth.tar")
    return {"cases": cases, "weights_digest": state_digest(torch.load(ours))}


def reference(work: Path, pose_evaluation: Path) -> dict:
    import numpy as np
    import pandas as pd
    import torch

    os.environ["HOME"] = str(work / "home")  # face_alignment's appdata_dir: ~/.face_alignment
    import face_alignment
    from face_alignment.models import FAN
    from face_alignment.utils import appdata_dir

    torch.manual_seed(0)
    data = Path(appdata_dir("face_alignment")) / "data"
    data.mkdir(parents=True, exist_ok=True)
    state = FAN(4).state_dict()
    torch.save(state, data / "2DFAN-4.pth.tar")
    sys.path.insert(0, str(HERE.parent))
    from arcface_recipe import state_digest  # needs only numpy and hashlib
    fa = face_alignment.FaceAlignment(face_alignment.LandmarksType._2D, device="cpu", flip_input=False,
                                      face_detector="folder")
    meta = json.loads((work / "meta.json").read_text())
    results = {}
    for name, case in meta["cases"].items():
        frames = {role: np.load(work / f"{name}_{role}.npy") for role in ("gt", "pred")}
        pickles = {}
        for role, video in frames.items():
            table = {"file_name": [], "frame_number": [], "value": []}
            for i, frame in enumerate(video):
                kp = fa.get_landmarks(frame, detected_faces=[np.array(case["boxes"][i], dtype=np.float64)])
                table["file_name"].append(f"{name}.mp4")
                table["frame_number"].append(i)
                table["value"].append(None if kp is None else kp[0])
            pickles[role] = work / f"{name}_{role}.pkl"
            pd.DataFrame(table).to_pickle(pickles[role])
        printed = subprocess.run([sys.executable, str(pose_evaluation / "cmp_kp.py"), str(pickles["gt"]), str(pickles["pred"])],
                                 capture_output=True, text=True, check=True).stdout
        average = float(re.search(r"Average difference: (\S+)", printed).group(1))
        gt_df, pred_df = pd.read_pickle(pickles["gt"]), pd.read_pickle(pickles["pred"])
        per_frame = [float(np.mean(np.abs(a - b).astype(float))) for a, b in zip(gt_df["value"], pred_df["value"])]
        results[name] = {"per_frame": per_frame, "average": average,
                         "landmarks_gt": [v.tolist() for v in gt_df["value"]]}
    return {"results": results, "weights_digest": state_digest(state)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pose-evaluation", type=Path, required=True)
    parser.add_argument("--pose-evaluation-commit", default="")
    parser.add_argument("--face-alignment-commit", default="")
    parser.add_argument("--ref-python", default=None)
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--reference", action="store_true", help="(internal) step 2, in the reference environment")
    args = parser.parse_args()
    if args.reference:
        (args.work / "reference.json").write_text(json.dumps(reference(args.work, args.pose_evaluation)))
        return
    shutil.rmtree(args.work, ignore_errors=True)
    args.work.mkdir(parents=True)
    meta = prepare(args.work)
    (args.work / "meta.json").write_text(json.dumps(meta))
    subprocess.run([args.ref_python, __file__, "--reference", "--pose-evaluation", str(args.pose_evaluation),
                    "--work", str(args.work)], check=True)
    found = json.loads((args.work / "reference.json").read_text())
    if found["weights_digest"] != meta["weights_digest"]:
        raise SystemExit("the reference's random FAN differs from the recipe's")
    with open(HERE / "akd.csv", "w", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["case", "frame", "akd"])
        for name, row in found["results"].items():
            for frame, value in enumerate(row["per_frame"]):
                writer.writerow([name, frame, repr(value)])
            writer.writerow([name, "mean", repr(row["average"])])
    manifest = {
        "scripts": {
            "pose-evaluation": {"repository": "AliaksandrSiarohin/pose-evaluation", "commit": args.pose_evaluation_commit,
                                "paths": ["extract.py", "cmp_kp.py"],
                                "how": "landmarks as extract.py --type face_pose gets them, cmp_kp.py on the two pickles"},
            "face-alignment": {"repository": "1adrianb/face-alignment", "commit": args.face_alignment_commit,
                               "paths": ["face_alignment/api.py", "face_alignment/utils.py", "face_alignment/models.py"],
                               "how": "FaceAlignment(LandmarksType._2D, flip_input=False).get_landmarks(frame, "
                                      "detected_faces=[dlib box])[0]"},
        },
        "shims": SHIMS,
        "weights": {"recipe": "torch.manual_seed(0); face_alignment.models.FAN(4).state_dict() saved",
                    "tensor_sha256": found["weights_digest"]},
        "cases": {name: {"frames_sha256": case["frames_sha256"], "boxes": case["boxes"]}
                  for name, case in meta["cases"].items()},
        "table": "akd.csv",
    }
    (HERE / "akd.json").write_text(json.dumps(manifest, indent=1) + "\n")
    print(json.dumps({k: {"per_frame": v["per_frame"], "average": v["average"]} for k, v in found["results"].items()}))


if __name__ == "__main__":
    main()
