"""Make the LSE calibration table (``tests/calibration/lipsync.csv`` + ``lipsync.json``) by running syncnet_python itself.

Not a test and not part of the package: how the table was made, kept so that anyone can re-make it.
The references' code is never copied into the project: it is run from checkouts of
``joonson/syncnet_python`` and ``Rudrabha/Wav2Lip`` outside it, in their own environment (a venv
with torch, numpy, scipy, opencv-python-headless and python_speech_features, no cabench)::

    python tests/calibration/run_syncnet.py --syncnet /path/syncnet_python --wav2lip /path/Wav2Lip \\
        --syncnet-commit SHA --wav2lip-commit SHA --ref-python /work/ref/syncnet/.venv/bin/python --work /tmp/lse-calibration

Steps: (1, project python) the recipe's inputs as stored (``tests/calibration/inputs/lipsync``, made by
``tests/lipsync_recipe.py``; ``--remake-inputs`` regenerates and stores them first): per case the frames
as the metric sees them, the audio aligned to frame 0, and dlib's face boxes; (2, reference python,
``--reference``) syncnet_python's random ``S`` after ``torch.manual_seed(0)`` saved by its instance
(``torch.save(SyncNetInstance().__S__.state_dict())``, the format of ``syncnet_v2.model``) and loaded
by its ``loadParameters``; crops made by ``run_pipeline.crop_video`` from those boxes; scores by
``SyncNetInstance.evaluate`` (and Wav2Lip's ``SyncNetInstance_calc_scores.evaluate``, which also
returns LSE-D, and alone serves the whole-frame case); (3, project python) the table.
"""

from __future__ import annotations

import argparse
import ast
import csv
import json
import os
import shutil
import subprocess
import sys
import types
from pathlib import Path

HERE = Path(__file__).resolve().parent

SHIMS = [
    "torch.nn.Module.cuda and torch.Tensor.cuda: the identity (CPU machine; SyncNetInstance places the network "
    "and batches on CUDA)",
    "ffmpeg calls (subprocess.call): replaced by writing the recipe's files where ffmpeg would have written them: "
    "the frames as %06d.jpg files that hold lossless PNG data (cv2.imread reads them by content), the audio as "
    "16 kHz mono int16 audio.wav; crop_video's audio cut writes the audio unchanged (the case is one track "
    "from frame 0)",
    "run_pipeline.py: only its crop_video function is executed (taken from the file by ast; the module runs its "
    "whole pipeline when imported); its cv2.VideoWriter collects the crops instead of encoding XVID, so the "
    "crops reach SyncNetInstance.evaluate losslessly",
    "face boxes: dlib's (the recipe's), given to crop_video as the track S3FD + track_shot would have made",
    "calc_pdist wrapped to keep the distances it returns; LSE-D and the per-window values are computed from them "
    "with the lines of SyncNetInstance.evaluate (mean over windows, min, median) and checked against the "
    "confidence evaluate returns and the minimum distance Wav2Lip's evaluate returns",
]


def prepare(work: Path, remake_inputs: bool = False) -> dict:
    sys.path[:0] = [str(HERE.parent.parent), str(HERE.parent)]
    import numpy as np
    import torch
    from lipsync_recipe import (
        CASES,
        dlib_boxes,
        frames_rgb,
        make_case,
        save_case,
        stored_case,
        syncnet_weights,
        tensor_digest,
    )
    from scipy.io import wavfile

    cases = {}
    for case in CASES.values():
        if remake_inputs:
            sequence, audio = make_case(case, work / "sequences")
            frames = frames_rgb(sequence)
            save_case(case.name, frames, audio.aligned(len(frames)))
        frames, audio = stored_case(case.name)
        folder = work / "inputs" / case.name
        folder.mkdir(parents=True, exist_ok=True)
        np.save(folder / "frames_bgr.npy", frames[..., ::-1].copy())
        wavfile.write(folder / "audio.wav", 16000, audio.samples)
        boxes = dlib_boxes(frames)
        json.dump(boxes, open(folder / "boxes.json", "w"))
        cases[case.name] = {"seed": case.seed, "shift": case.shift, "crop": case.crop, "frames": len(frames),
                            "frames_sha256": __import__("hashlib").sha256(frames.tobytes()).hexdigest(),
                            "audio_sha256": audio.digest()}
    ours = syncnet_weights(work / "ours.model")
    return {"cases": cases, "our_weights_digest": tensor_digest(torch.load(ours))}


def _crop_video(run_pipeline: Path, fake_cv2, fake_subprocess):
    import glob
    import pdb

    import numpy as np
    from scipy import signal
    from scipy.io import wavfile

    tree = ast.parse(run_pipeline.read_text())
    function = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "crop_video")
    namespace = {"np": np, "cv2": fake_cv2, "glob": glob, "os": os, "signal": signal, "subprocess": fake_subprocess,
                 "wavfile": wavfile, "pdb": pdb}
    exec(compile(ast.Module([function], []), str(run_pipeline), "exec"), namespace)
    return namespace["crop_video"]


def reference(work: Path, syncnet: Path, wav2lip: Path) -> dict:
    import cv2
    import numpy as np
    import torch

    torch.nn.Module.cuda = lambda self, *a, **k: self
    torch.Tensor.cuda = lambda self, *a, **k: self
    sys.path.insert(0, str(syncnet))
    import SyncNetInstance as syncnet_instance

    spec = __import__("importlib.util").util.spec_from_file_location(
        "SyncNetInstance_calc_scores", wav2lip / "evaluation" / "scores_LSE" / "SyncNetInstance_calc_scores.py")
    calc_scores = __import__("importlib.util").util.module_from_spec(spec)
    spec.loader.exec_module(calc_scores)

    torch.manual_seed(0)
    instance = syncnet_instance.SyncNetInstance()
    weights = work / "syncnet_v2.model"
    torch.save(instance.__S__.state_dict(), weights)
    instance.loadParameters(str(weights))
    w2l = calc_scores.SyncNetInstance()
    w2l.loadParameters(str(weights))

    captured = []
    original = syncnet_instance.calc_pdist

    def keeping(*args, **kwargs):
        out = original(*args, **kwargs)
        captured.append(out)
        return out

    syncnet_instance.calc_pdist = keeping

    results = {}
    for folder in sorted((work / "inputs").iterdir()):
        meta = json.loads((work / "meta.json").read_text())["cases"][folder.name]
        frames = np.load(folder / "frames_bgr.npy")
        audio_bytes = (folder / "audio.wav").read_bytes()
        video: list[np.ndarray] = []
        if meta["crop"] == "syncnet":
            source = work / "frames" / folder.name
            source.mkdir(parents=True, exist_ok=True)
            for i, frame in enumerate(frames):
                (source / f"{i + 1:06d}.jpg").write_bytes(cv2.imencode(".png", frame)[1].tobytes())

            class Writer:
                def __init__(self, path, *args):
                    self.path = path

                def write(self, image, video=video):
                    video.append(image.copy())

                def release(self):
                    Path(self.path).write_bytes(b"")

            fake_cv2 = types.SimpleNamespace(**{k: getattr(cv2, k) for k in dir(cv2) if not k.startswith("__")})
            fake_cv2.VideoWriter = Writer

            def cut_audio(command, shell=True, stdout=None, audio_bytes=audio_bytes):
                target = command.split()[-1]
                if target.endswith(".wav"):
                    Path(target).write_bytes(audio_bytes)
                return 0

            crop_video = _crop_video(syncnet / "run_pipeline.py", fake_cv2, types.SimpleNamespace(call=cut_audio))
            boxes = json.loads((folder / "boxes.json").read_text())
            opt = types.SimpleNamespace(frames_dir=str(work / "frames"), reference=folder.name, frame_rate=25,
                                        crop_scale=0.4, tmp_dir=str(work / "croptmp"), avi_dir=str(work / "avi"))
            (work / "croptmp" / folder.name).mkdir(parents=True, exist_ok=True)
            crop_video(opt, {"frame": np.arange(len(frames)), "bbox": np.array(boxes)}, str(work / f"crop-{folder.name}"))
        else:
            video = list(frames)

        def extract(command, shell=True, stdout=None, video=video, audio_bytes=audio_bytes):
            target = command.split()[-1]
            if "-f image2" in command:
                for i, image in enumerate(video):
                    Path(target % (i + 1)).write_bytes(cv2.imencode(".png", image)[1].tobytes())
            elif target.endswith("audio.wav"):
                Path(target).write_bytes(audio_bytes)
            return 0

        opt = types.SimpleNamespace(tmp_dir=str(work / "pytmp"), reference=folder.name, batch_size=20, vshift=15)
        syncnet_instance.subprocess.call = extract
        calc_scores.subprocess.call = extract
        row = {}
        if meta["crop"] == "syncnet":
            captured.clear()
            offset, conf, _ = instance.evaluate(opt, videofile="(recipe)")
            dists = captured[-1]
            mdist = torch.mean(torch.stack(dists, 1), 1)
            minval, minidx = torch.min(mdist, 0)
            fdist = np.stack([dist[minidx].numpy() for dist in dists])
            fconf = torch.median(mdist).numpy() - fdist
            assert abs(float(torch.median(mdist) - minval) - float(conf)) < 1e-6
            row.update(offset=int(offset), conf=float(conf), minval=float(minval), fdist=fdist.tolist(),
                       fconf=fconf.tolist())
        w_offset, w_conf, w_minval = w2l.evaluate(opt, videofile="(recipe)")
        row.update(wav2lip_offset=int(w_offset), wav2lip_conf=float(w_conf), wav2lip_minval=float(w_minval))
        if meta["crop"] == "frame":  # Wav2Lip's per-window values come from the same lines as syncnet_python's
            row.update(offset=int(w_offset), conf=float(w_conf), minval=float(w_minval))
        results[folder.name] = row
    return {"results": results, "weights_digest": _digest(torch.load(weights))}


def _digest(state) -> str:
    """The recipe's tensor digest (tests/arcface_recipe.py needs only numpy and hashlib, so it imports here)."""
    sys.path.insert(0, str(HERE.parent))
    from arcface_recipe import state_digest

    return state_digest(state)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--syncnet", type=Path, required=True, help="a checkout of joonson/syncnet_python")
    parser.add_argument("--wav2lip", type=Path, required=True, help="a checkout of Rudrabha/Wav2Lip")
    parser.add_argument("--syncnet-commit", default="", help="the syncnet_python commit checked out")
    parser.add_argument("--wav2lip-commit", default="", help="the Wav2Lip commit checked out")
    parser.add_argument("--ref-python", default=None, help="the reference environment's python")
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--remake-inputs", action="store_true",
                        help="regenerate the inputs from the recipe and store them (tests/calibration/inputs/lipsync) first")
    parser.add_argument("--reference", action="store_true", help="(internal) step 2, in the reference environment")
    args = parser.parse_args()
    if args.reference:
        json.dump(reference(args.work, args.syncnet, args.wav2lip), open(args.work / "reference.json", "w"))
        return
    shutil.rmtree(args.work, ignore_errors=True)
    args.work.mkdir(parents=True)
    meta = prepare(args.work, args.remake_inputs)
    (args.work / "meta.json").write_text(json.dumps(meta))
    subprocess.run([args.ref_python, __file__, "--reference", "--syncnet", str(args.syncnet), "--wav2lip",
                    str(args.wav2lip), "--work", str(args.work)], check=True)
    found = json.loads((args.work / "reference.json").read_text())
    if found["weights_digest"] != meta["our_weights_digest"]:
        raise SystemExit("the reference's random SyncNet differs from the recipe's (torch versions?)")
    with open(HERE / "lipsync.csv", "w", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["case", "frame", "lse_d", "lse_c", "av_offset"])
        for name, row in found["results"].items():
            if "fdist" in row:
                for frame, (d, c) in enumerate(zip(row["fdist"], row["fconf"])):
                    writer.writerow([name, frame, repr(d), repr(c), row["offset"]])
            writer.writerow([name, "mean", repr(row["minval"]), repr(row["conf"]), row["offset"]])
    versions = subprocess.run([args.ref_python, "-c", "import torch, numpy, scipy, cv2, python_speech_features as p; "
                               "print(torch.__version__, numpy.__version__, scipy.__version__, cv2.__version__)"],
                              capture_output=True, text=True).stdout.split()
    manifest = {
        "scripts": {
            "syncnet_python": {"repository": "joonson/syncnet_python", "commit": args.syncnet_commit,
                               "paths": ["SyncNetInstance.py", "SyncNetModel.py", "run_pipeline.py"],
                               "how": "crop_video(opt, track of dlib boxes) -> SyncNetInstance.evaluate(opt) with "
                                      "batch_size 20, vshift 15; per-window values from its calc_pdist distances"},
            "wav2lip": {"repository": "Rudrabha/Wav2Lip", "commit": args.wav2lip_commit,
                        "paths": ["evaluation/scores_LSE/SyncNetInstance_calc_scores.py"],
                        "how": "SyncNetInstance_calc_scores.evaluate on the same crops (syncnet cases; its minimum "
                               "distance checked equal) or on the whole frames (talk-frame: LRS scoring)"},
        },
        "shims": SHIMS,
        "weights": {"recipe": "torch.manual_seed(0); SyncNetInstance().__S__.state_dict() saved with torch.save",
                    "tensor_sha256": found["weights_digest"]},
        "cases": meta["cases"],
        "wav2lip_crosscheck": {name: {k: row[k] for k in ("wav2lip_offset", "wav2lip_conf", "wav2lip_minval")}
                               for name, row in found["results"].items()},
        "reference_environment": dict(zip(("torch", "numpy", "scipy", "opencv"), versions)),
        "table": "lipsync.csv",
    }
    (HERE / "lipsync.json").write_text(json.dumps(manifest, indent=1) + "\n")
    print(json.dumps(found["results"], indent=1)[:3000])


if __name__ == "__main__":
    main()
