"""Run the reference implementations of the set-level metrics on the calibration inputs (not a test).

Each step runs in the reference's own environment (a plain venv with the package from PyPI; no code
of the project is imported), on the files ``set_metrics_inputs.py`` wrote into ``--work``::

    /work/ref/pytorch-fid/bin/python tests/calibration/run_set_references.py pytorch-fid --work /tmp/setcal
    /work/ref/torch-fidelity/bin/python tests/calibration/run_set_references.py torch-fidelity --work /tmp/setcal
    /work/ref/cpbd/bin/python tests/calibration/run_set_references.py cpbd --work /tmp/setcal
    /work/ref/pytorch-fid/bin/python tests/calibration/run_set_references.py manifest --work /tmp/setcal

- ``pytorch-fid`` (pytorch-fid 0.3.0): builds pytorch-fid's own FID Inception (its
  ``_inception_v3`` with its ``FIDInception*`` blocks, as its ``fid_inception_v3`` does), loads the
  recipe's random weights strictly, measures the batch-norm running statistics on the recipe's
  real photos (train mode, float64, one batch, momentum None: the batch's mean and unbiased
  variance), writes ``tests/calibration/inception_bn_stats.npz``, saves the network's
  ``state_dict()`` as ``pt_inception-2015-12-05-6726825d.pth`` in a private ``TORCH_HOME``, and runs
  per case its ``get_activations`` (batch size 50, the command line's default) on the real and the
  generated files, ``np.mean`` / ``np.cov`` as its ``calculate_activation_statistics`` and its
  ``calculate_frechet_distance``; for one case (``CLI_CASE``) also ``python -m pytorch_fid --device
  cpu real fake`` (its ``load_state_dict_from_url`` finds the file in that cache and downloads
  nothing: no shim), whose printed FID is in the table as ``fid_cli``. The features go to
  ``<work>/<case>/features.npz`` for the KID step. (The command line for every case would double a
  CPU run that takes seconds per frame on a shared machine, for the same numbers.)
- ``torch-fidelity`` (torch-fidelity 0.4.x): ``metric_kid.kid_features_to_metric`` on those features
  (float32 tensors as its extractor gives them), its defaults (100 subsets, polynomial kernel of
  degree 3, gamma 1/d, coef0 1, rng_seed 2020), the subset size min(1000, n).
- ``cpbd`` (cpbd-py312): ``cpbd.compute`` of each frame's 8-bit grayscale as its command line reads it
  (``imageio.v2.imread(path, mode='L')``, i.e. PIL's ITU-R 601 ``convert('L')``).

The numbers are appended to ``tests/calibration/set_metrics.csv`` (case, metric, reference, frame,
value; frame is -1 for a set value) replacing the rows of the same reference.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
TABLE = HERE / "set_metrics.csv"
CASES = ("photos-256x256", "photos-320x200", "synth-176x144", "synth-256x320")
WEIGHT_FILE = "pt_inception-2015-12-05-6726825d.pth"
CLI_CASE = "photos-256x256"  # the case also run through ``python -m pytorch_fid`` (the others through its functions)


def write_rows(reference: str, rows: list[dict]) -> None:
    kept = []
    if TABLE.exists():
        with open(TABLE, newline="") as handle:
            kept = [row for row in csv.DictReader(handle) if row["reference"] != reference]
    with open(TABLE, "w", newline="") as handle:
        writer = csv.DictWriter(handle, ["case", "metric", "reference", "frame", "value"], lineterminator="\n")
        writer.writeheader()
        writer.writerows(kept + rows)


def pytorch_fid_model():
    """pytorch-fid's FID Inception, built by its own classes as ``fid_inception_v3`` builds it (without
    the download)."""
    from pytorch_fid import inception as I

    net = I._inception_v3(num_classes=1008, aux_logits=False, weights=None)
    net.Mixed_5b = I.FIDInceptionA(192, pool_features=32)
    net.Mixed_5c = I.FIDInceptionA(256, pool_features=64)
    net.Mixed_5d = I.FIDInceptionA(288, pool_features=64)
    net.Mixed_6b = I.FIDInceptionC(768, channels_7x7=128)
    net.Mixed_6c = I.FIDInceptionC(768, channels_7x7=160)
    net.Mixed_6d = I.FIDInceptionC(768, channels_7x7=160)
    net.Mixed_6e = I.FIDInceptionC(768, channels_7x7=192)
    net.Mixed_7b = I.FIDInceptionE_1(1280)
    net.Mixed_7c = I.FIDInceptionE_2(2048)
    return net


def run_pytorch_fid(work: Path) -> None:
    import torch
    import torch.nn.functional as F

    home = work / "torch_home"
    checkpoints = home / "hub" / "checkpoints"
    if not (checkpoints / WEIGHT_FILE).exists():
        net = pytorch_fid_model()
        with np.load(work / "weights.npz") as stored:
            weights = {key: torch.from_numpy(stored[key]) for key in stored.files}
        missing, unexpected = net.load_state_dict(weights, strict=False)
        assert not unexpected and all(k.endswith(("running_mean", "running_var", "num_batches_tracked"))
                                      for k in missing), (missing, unexpected)
        # batch-norm statistics of real photos: pytorch-fid's preprocessing (bilinear to 299, 2x - 1), train mode
        frames = torch.from_numpy(np.load(work / "bn_frames.npy")).permute(0, 3, 1, 2).double().div(255)
        x = 2 * F.interpolate(frames, size=(299, 299), mode="bilinear", align_corners=False) - 1
        net = net.double()
        for module in net.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.reset_running_stats()
                module.momentum = None
        net.train()
        with torch.no_grad():
            net(x)
        stats = {key: value.float().numpy() for key, value in net.state_dict().items()
                 if key.endswith(("running_mean", "running_var"))}
        np.savez_compressed(HERE / "inception_bn_stats.npz", **stats)
        checkpoints.mkdir(parents=True, exist_ok=True)
        torch.save(net.float().eval().state_dict(), checkpoints / WEIGHT_FILE)

    env = {**os.environ, "TORCH_HOME": str(home)}
    os.environ["TORCH_HOME"] = str(home)
    from pytorch_fid.fid_score import calculate_frechet_distance, get_activations
    from pytorch_fid.inception import InceptionV3

    model = InceptionV3([3])
    rows = []
    for case in CASES:
        features = {}
        if (work / case / "features.npz").exists():  # made by an earlier run of this step on the same files
            with np.load(work / case / "features.npz") as stored:
                features = {role: stored[role] for role in stored.files}
        for role in ("real", "fake"):
            if role not in features:
                files = sorted((work / case / role).glob("*.png"))
                features[role] = get_activations(files, model, batch_size=50, dims=2048, device="cpu", num_workers=0)
        np.savez(work / case / "features.npz", **features)
        # calculate_activation_statistics' two lines on get_activations' output, then its Fréchet distance
        stats = [(np.mean(features[r], axis=0), np.cov(features[r], rowvar=False)) for r in ("real", "fake")]
        fid = float(calculate_frechet_distance(*stats[0], *stats[1]))
        rows.append({"case": case, "metric": "fid", "reference": "pytorch-fid", "frame": -1, "value": repr(fid)})
        print(case, "FID", fid, flush=True)
        if case == CLI_CASE:  # the command line on the same files gives the same number
            output = subprocess.run([sys.executable, "-m", "pytorch_fid", "--device", "cpu", "--num-workers", "0",
                                     str(work / case / "real"), str(work / case / "fake")],
                                    env=env, capture_output=True, text=True, check=True).stdout
            cli = float(re.search(r"FID:\s+(\S+)", output).group(1))
            rows.append({"case": case, "metric": "fid_cli", "reference": "pytorch-fid", "frame": -1, "value": repr(cli)})
            print(case, "FID (command line)", cli, flush=True)
    write_rows("pytorch-fid", rows)
    (work / "pytorch-fid.json").write_text(json.dumps({"torch": torch.__version__, "weights": str(checkpoints / WEIGHT_FILE)}))


def run_torch_fidelity(work: Path) -> None:
    import torch
    from torch_fidelity.metric_kid import KEY_METRIC_KID_MEAN, KEY_METRIC_KID_STD, kid_features_to_metric

    rows = []
    for case in CASES:
        with np.load(work / case / "features.npz") as stored:
            fake = torch.from_numpy(stored["fake"].astype(np.float32))
            real = torch.from_numpy(stored["real"].astype(np.float32))
        size = min(1000, len(fake), len(real))
        # input 1 is the generated set, input 2 the real one (torch-fidelity's order)
        kid = kid_features_to_metric(fake, real, kid_subset_size=size, verbose=False)
        for metric, key in (("kid", KEY_METRIC_KID_MEAN), ("kid_std", KEY_METRIC_KID_STD)):
            rows.append({"case": case, "metric": metric, "reference": "torch-fidelity", "frame": -1,
                         "value": repr(float(kid[key]))})
        print(case, kid)
    write_rows("torch-fidelity", rows)


def run_cpbd(work: Path) -> None:
    import cpbd
    from imageio.v2 import imread

    rows = []
    for case in CASES:
        for role in ("real", "fake"):
            for index, path in enumerate(sorted((work / case / role).glob("*.png"))):
                value = float(cpbd.compute(imread(path, mode="L")))
                rows.append({"case": case, "metric": f"cpbd_{role}", "reference": "cpbd", "frame": index,
                             "value": repr(value)})
        print(case, "cpbd done")
    write_rows("cpbd", rows)


def write_manifest(work: Path) -> None:
    """``set_features.npz`` (pytorch-fid's features of every case) and ``set_metrics.json`` (what ran,
    with which versions, and the checksum of the weight file's tensors as pytorch-fid saved them)."""
    import platform

    import torch

    sys.path.insert(0, str(HERE.parent))
    from set_metrics_recipe import state_checksum

    saved = torch.load(work / "torch_home" / "hub" / "checkpoints" / WEIGHT_FILE, map_location="cpu")
    checksum = state_checksum({k: v.numpy() for k, v in saved.items() if not k.endswith("num_batches_tracked")})
    features = {}
    for case in CASES:
        with np.load(work / case / "features.npz") as stored:
            features.update({f"{case}/{role}": stored[role].astype(np.float32) for role in ("real", "fake")})
    np.savez_compressed(HERE / "set_features.npz", **features)
    versions = {}
    for name in ("pytorch-fid", "torch-fidelity", "cpbd"):
        info = work / f"{name}.json"
        if info.exists():
            versions[name] = json.loads(info.read_text())
    manifest = {
        "about": "Set-level numbers (FID, KID, CPBD) the reference implementations produced on the inputs of "
                 "tests/set_metrics_recipe.py, made by tests/calibration/run_set_references.py (see its docstring "
                 "for each step); set_features.npz holds pytorch-fid's own features of every case",
        "weights": {"file": WEIGHT_FILE, "checksum": checksum,
                    "how": "recipe weights (numpy, seed 2024) loaded strictly into pytorch-fid's own FID Inception; "
                           "batch-norm statistics measured by it on the recipe's photos (train mode, float64); "
                           "saved with torch.save(model.state_dict())"},
        "references": versions,
        "shims": [],
        "environment": {"python": platform.python_version(), "torch": torch.__version__, "numpy": np.__version__},
        "cases": list(CASES),
    }
    (HERE / "set_metrics.json").write_text(json.dumps(manifest, indent=1) + "\n")


def _versions(work: Path, name: str, packages: tuple[str, ...]) -> None:
    import importlib.metadata

    (work / f"{name}.json").write_text(json.dumps({p: importlib.metadata.version(p) for p in packages}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("reference", choices=("pytorch-fid", "torch-fidelity", "cpbd", "manifest"))
    parser.add_argument("--work", required=True, type=Path)
    args = parser.parse_args()
    packages = {"pytorch-fid": ("pytorch-fid", "torch", "scipy", "numpy"), "torch-fidelity": ("torch-fidelity", "numpy"),
                "cpbd": ("cpbd-py312", "scikit-image", "scipy", "numpy", "imageio", "pillow")}
    if args.reference == "manifest":
        write_manifest(args.work)
        return
    {"pytorch-fid": run_pytorch_fid, "torch-fidelity": run_torch_fidelity, "cpbd": run_cpbd}[args.reference](args.work)
    _versions(args.work, args.reference, packages[args.reference])


if __name__ == "__main__":
    main()
