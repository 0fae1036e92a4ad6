"""Make the ArcFace CSIM calibration table (``tests/calibration/arcface.csv`` + ``arcface.json``) with insightface itself.

Not a test and not part of the package: how the table was made. insightface is run in its own
environment (a venv with ``insightface``, ``onnxruntime``, ``onnx``, ``scikit-image``,
``opencv-python-headless``; no cabench)::

    python tests/calibration/run_insightface.py --ref-python /work/ref/insightface/.venv/bin/python \\
        --work /tmp/arcface-calibration

Steps: (1, project python) the recipe's inputs (``tests/arcface_recipe.py``): frames, the five
keypoints of each, the stored random ArcFace ONNX (``--remake-model`` first remakes it with the recipe
on this machine and stores it); (2, reference python, ``--reference``) per frame
``ArcFaceONNX(model_file).get(image_bgr, Face(kps=points))`` (its ``face_align.norm_crop`` and
``get_feat``) for the ground truth and the prediction, and ``compute_sim`` of the two; (3) the table.
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent

SHIMS = [
    "keypoints: the recipe's (dlib's 68 landmarks reduced to five) given as Face(kps=...), in place of its SCRFD "
    "detector's; nothing else is replaced",
]


def prepare(work: Path, remake_model: bool) -> dict:
    sys.path[:0] = [str(HERE.parent.parent), str(HERE.parent)]
    import hashlib

    import numpy as np
    from arcface_recipe import CASES, STORED_MODEL, arcface_onnx, case_frames, keypoints, onnx_digest

    cases = {}
    for case in CASES.values():
        gt, pred = case_frames(case.name)
        np.save(work / f"{case.name}_gt_bgr.npy", gt[..., ::-1].copy())
        np.save(work / f"{case.name}_pred_bgr.npy", pred[..., ::-1].copy())
        gt_points, pred_points = keypoints(gt, pred, case.face_region)
        cases[case.name] = {"face_region": case.face_region, "gt_points": gt_points, "pred_points": pred_points,
                            "frames_sha256": hashlib.sha256(gt.tobytes() + pred.tobytes()).hexdigest()}
    if remake_model:
        arcface_onnx(STORED_MODEL)
    model = work / "w600k_r50.onnx"
    shutil.copyfile(STORED_MODEL, model)
    return {"cases": cases, "onnx_digest": onnx_digest(model)}


def reference(work: Path) -> dict:
    import insightface
    import numpy as np
    from insightface.app.common import Face
    from insightface.model_zoo.arcface_onnx import ArcFaceONNX

    meta = json.loads((work / "meta.json").read_text())
    model = ArcFaceONNX(model_file=str(work / "w600k_r50.onnx"))
    model.prepare(-1)
    results = {}
    for name, case in meta["cases"].items():
        gt, pred = np.load(work / f"{name}_gt_bgr.npy"), np.load(work / f"{name}_pred_bgr.npy")
        sims = []
        for g, p, gk, pk in zip(gt, pred, case["gt_points"], case["pred_points"]):
            e_gt = model.get(g, Face(kps=np.array(gk, dtype=np.float32)))
            e_pred = model.get(p, Face(kps=np.array(pk, dtype=np.float32)))
            sims.append(float(model.compute_sim(e_pred, e_gt)))
        results[name] = sims
    return {"results": results, "insightface": insightface.__version__, "input_mean": model.input_mean,
            "input_std": model.input_std}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--ref-python", default=None)
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--reference", action="store_true", help="(internal) step 2, in the reference environment")
    parser.add_argument("--remake-model", action="store_true",
                        help="remake the stored random ArcFace model with the recipe before making the table")
    args = parser.parse_args()
    if args.reference:
        (args.work / "reference.json").write_text(json.dumps(reference(args.work)))
        return
    shutil.rmtree(args.work, ignore_errors=True)
    args.work.mkdir(parents=True)
    meta = prepare(args.work, args.remake_model)
    (args.work / "meta.json").write_text(json.dumps(meta))
    subprocess.run([args.ref_python, __file__, "--reference", "--work", str(args.work)], check=True)
    found = json.loads((args.work / "reference.json").read_text())
    with open(HERE / "arcface.csv", "w", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["case", "frame", "csim_arcface"])
        for name, sims in found["results"].items():
            for frame, value in enumerate(sims):
                writer.writerow([name, frame, repr(value)])
    versions = subprocess.run([args.ref_python, "-c", "import onnxruntime, skimage, cv2, numpy; print(onnxruntime.__version__, "
                               "skimage.__version__, cv2.__version__, numpy.__version__)"],
                              capture_output=True, text=True).stdout.split()
    manifest = {
        "scripts": {"insightface": {"repository": "deepinsight/insightface", "package": f"insightface=={found['insightface']}",
                                    "paths": ["python-package/insightface/model_zoo/arcface_onnx.py",
                                              "python-package/insightface/utils/face_align.py"],
                                    "how": "ArcFaceONNX(model_file).get(image_bgr, Face(kps)) for the prediction and "
                                           "the ground truth of each frame, compute_sim(pred, gt); input mean/std "
                                           f"{found['input_mean']}/{found['input_std']} by its graph rule"}},
        "shims": SHIMS,
        "model": {"recipe": "tests/arcface_recipe.py arcface_onnx (seed 0; the last BatchNorm's statistics from "
                            "tests/calibration/arcface_embedding_stats.npz), stored as "
                            "tests/calibration/inputs/arcface_random.onnx", "initializer_sha256": meta["onnx_digest"]},
        "cases": {name: {"face_region": case["face_region"], "frames_sha256": case["frames_sha256"]}
                  for name, case in meta["cases"].items()},
        "reference_environment": dict(zip(("onnxruntime", "scikit-image", "opencv", "numpy"), versions)),
        "table": "arcface.csv",
    }
    (HERE / "arcface.json").write_text(json.dumps(manifest, indent=1) + "\n")
    print(json.dumps(found, indent=1))


if __name__ == "__main__":
    main()
