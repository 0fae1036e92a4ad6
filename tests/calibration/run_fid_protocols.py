"""Run clean-fid and torch-fidelity on the set-level calibration inputs (not a test).

Each step runs in the reference's own environment (a plain venv with the package from PyPI; no code
of the project is imported), on the files ``set_metrics_inputs.py`` wrote into ``--work``::

    python tests/calibration/set_metrics_inputs.py --work /work/ref/setcal          # the project's env
    /work/ref/torch-fidelity/bin/python tests/calibration/run_fid_protocols.py torch-fidelity --work /work/ref/setcal
    /work/ref/clean-fid/bin/python tests/calibration/run_fid_protocols.py clean-fid --work /work/ref/setcal

The weights are the recipe's random FID Inception (``tests/set_metrics_recipe.py``: ``weights.npz``
plus the batch-norm statistics pytorch-fid's network measured, ``inception_bn_stats.npz``), checked
against the checksum in ``set_metrics.json`` and written in each reference's own format:

- torch-fidelity 0.4.0 loads a state dict with pytorch-fid's key names (its
  ``weights-inception-2015-12-05-6726825d.pth`` is the same bytes as pytorch-fid's file): the
  tensors are saved with ``torch.save`` and given as ``feature_extractor_weights_path``. The numbers
  come from ``torch_fidelity.calculate_metrics(input1=fake, input2=real, fid=True, kid=True,
  kid_subset_size=n)`` (its command line's function; CPU, no cache); the stored features and the
  resized input from its ``FeatureExtractorInceptionV3`` / ``interpolate_bilinear_2d_like_tensorflow1x``
  on frames read by its ``ImagesPathDataset``.
- clean-fid 0.1.35 loads NVIDIA's TorchScript ``inception-2015-12-05.pt`` from ``/tmp`` (its
  ``InceptionV3W`` path on Linux). NVIDIA's conversion code is not published, so the file is made
  here (the one shim): a module with the layout of NVIDIA's file (``layers`` = conv ... mixed_10,
  an 8 x 8 average pool; ``output`` = the classifier; each convolution holding ``weight``, ``beta``,
  ``mean``, ``var``, batch norm without a scale, eps 0.001) and the call clean-fid makes
  (``forward(img, return_features)`` resizing like TensorFlow 1 with ``affine_grid`` /
  ``grid_sample``, then ``(x - 128) / 128``), scripted with ``torch.jit.script`` and filled with the
  recipe's tensors. ``legacy_pytorch`` loads pytorch-fid's file from the torch hub cache (its
  ``FID_WEIGHTS_URL`` name; ``TORCH_HOME`` set, nothing downloaded). Per mode: clean-fid's
  ``build_feature_extractor(mode)`` and ``get_folder_features`` (num_workers 0, CPU, no
  DataParallel), then ``fid_from_feats`` and ``kernel_distance`` (numpy's global generator seeded 0;
  with the subset size equal to the set size every subset is the whole set, so the seed does not
  matter), as its ``compute_fid`` / ``compute_kid`` for two folders do.

Rows go to ``set_metrics.csv`` (reference = ``protocol:`` and the protocol id); the first two real and the last two
generated frames' features of every case and mode to ``set_features_protocols.npz``; the SHA-256 of
the float32 network input the reference made from the first two real frames of each case, the
versions and the shims to ``fid_protocols.json``.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import sys
from collections import OrderedDict
from contextlib import contextmanager
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
TABLE = HERE / "set_metrics.csv"
FEATURES = HERE / "set_features_protocols.npz"
INFO = HERE / "fid_protocols.json"
CASES = ("photos-256x256", "photos-320x200", "synth-176x144", "synth-256x320")
# clean-fid's modes on fewer cases (a CPU run takes minutes per case on the shared machine): non-square ones
CLEAN_CASES = ("photos-320x200", "synth-256x320")
LEGACY_CASES = ("synth-176x144",)
PTH = "pt_inception-2015-12-05-6726825d.pth"


@contextmanager
def locked():
    """One writer at a time (steps of one reference may run in parallel, one per mode and case)."""
    import fcntl

    with open("/tmp/run_fid_protocols.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def write_rows(rows: list[dict]) -> None:
    """Add ``rows`` to the table, replacing the rows of the same reference and case."""
    replaced = {(row["reference"], row["case"]) for row in rows}
    with locked():
        with open(TABLE, newline="") as handle:
            kept = [row for row in csv.DictReader(handle) if (row["reference"], row["case"]) not in replaced]
        with open(TABLE, "w", newline="") as handle:
            writer = csv.DictWriter(handle, ["case", "metric", "reference", "frame", "value"], lineterminator="\n")
            writer.writeheader()
            writer.writerows(kept + rows)


def update_store(entries: dict[str, np.ndarray], info: dict) -> None:
    with locked():
        _update_store(entries, info)


def _update_store(entries: dict[str, np.ndarray], info: dict) -> None:
    stored = {}
    if FEATURES.exists():
        with np.load(FEATURES) as old:
            stored = {key: old[key] for key in old.files}
    stored.update(entries)
    np.savez_compressed(FEATURES, **stored)
    old_info = json.loads(INFO.read_text()) if INFO.exists() else {}
    for key, value in info.items():
        for name, inner in value.items():  # two levels merged: {"resize_sha256": {reference: {case: hash}}}
            target = old_info.setdefault(key, {})
            if isinstance(inner, dict):
                target.setdefault(name, {}).update(inner)
            else:
                target[name] = inner
    INFO.write_text(json.dumps(old_info, indent=1, sort_keys=True) + "\n")


def recipe_state(work: Path) -> dict[str, np.ndarray]:
    """The recipe's tensors with pytorch-fid's names, checked against the calibration's checksum."""
    state = {}
    with np.load(work / "weights.npz") as stored:
        state.update({key: stored[key] for key in stored.files})
    with np.load(HERE / "inception_bn_stats.npz") as stored:
        state.update({key: stored[key] for key in stored.files})
    digest = hashlib.sha256()
    for key in sorted(state):
        value = np.ascontiguousarray(state[key], dtype=np.float32)
        digest.update(f"{key}|{value.shape}|".encode())
        digest.update(value.tobytes())
    want = json.loads((HERE / "set_metrics.json").read_text())["weights"]["checksum"]
    assert digest.hexdigest() == want, "the recipe's weights are not the calibration's"
    return state


def write_pth(work: Path) -> Path:
    import torch

    path = work / "torch_home" / "hub" / "checkpoints" / PTH
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save({key: torch.from_numpy(value) for key, value in recipe_state(work).items()}, path)
    return path


def sha(tensor) -> str:
    return hashlib.sha256(np.ascontiguousarray(tensor.numpy(), dtype=np.float32).tobytes()).hexdigest()


def files(work: Path, case: str, role: str) -> list[Path]:
    return sorted((work / case / role).glob("*.png"))


def set_rows(reference: str, case: str, fid: float, kid: float, kid_std: float | None = None) -> list[dict]:
    reference = f"protocol:{reference}"
    rows = [{"case": case, "metric": "fid", "reference": reference, "frame": -1, "value": repr(float(fid))},
            {"case": case, "metric": "kid", "reference": reference, "frame": -1, "value": repr(float(kid))}]
    if kid_std is not None:
        rows.append({"case": case, "metric": "kid_std", "reference": reference, "frame": -1, "value": repr(float(kid_std))})
    print(reference, case, rows, flush=True)
    return rows


# ------------------------------------------------------------------------------ torch-fidelity


def run_torch_fidelity(work: Path) -> None:
    import importlib.metadata

    import torch
    import torch_fidelity
    from torch_fidelity.datasets import ImagesPathDataset
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3
    from torch_fidelity.interpolate_compat_tensorflow import interpolate_bilinear_2d_like_tensorflow1x

    reference = "torch-fidelity"
    pth = write_pth(work)
    extractor = FeatureExtractorInceptionV3("inception-v3-compat", ["2048"], feature_extractor_weights_path=str(pth))
    rows, entries, hashes = [], {}, {}
    for case in CASES:
        n = min(len(files(work, case, "fake")), len(files(work, case, "real")))
        metrics = torch_fidelity.calculate_metrics(
            input1=str(work / case / "fake"), input2=str(work / case / "real"), fid=True, kid=True,
            kid_subset_size=n, feature_extractor_weights_path=str(pth), cuda=False, cache=False, verbose=False)
        rows += set_rows(reference, case, metrics["frechet_inception_distance"],
                         metrics["kernel_inception_distance_mean"], metrics["kernel_inception_distance_std"])
        for role, chosen in (("real", files(work, case, "real")[:2]), ("fake", files(work, case, "fake")[-2:])):
            batch = torch.stack([ImagesPathDataset(chosen)[i] for i in range(len(chosen))])
            with torch.no_grad():
                entries[f"{reference}/{case}/{role}"] = extractor(batch)[0].numpy()
            if role == "real":
                hashes[case] = sha(interpolate_bilinear_2d_like_tensorflow1x(
                    batch.to(torch.float32), size=(299, 299), align_corners=False))
    write_rows(rows)
    update_store(entries, {"resize_sha256": {reference: hashes}, "versions": {reference: {
        p: importlib.metadata.version(p) for p in ("torch-fidelity", "torch", "numpy", "scipy", "pillow")}}})


# ------------------------------------------------------------------------------------ clean-fid


def nvidia_layout():
    """A module laid out as NVIDIA's ``inception-2015-12-05.pt`` (see the module docstring)."""
    import torch
    import torch.nn.functional as F
    from torch import nn

    class Conv(nn.Module):
        def __init__(self, cin: int, cout: int, kernel, stride: int = 1, padding=0):
            super().__init__()
            kh, kw = (kernel, kernel) if isinstance(kernel, int) else kernel
            self.stride = (stride, stride)  # pairs: TorchScript's conv2d takes lists
            self.padding = (padding, padding) if isinstance(padding, int) else tuple(padding)
            self.weight = nn.Parameter(torch.zeros(cout, cin, kh, kw))
            self.beta = nn.Parameter(torch.zeros(cout))
            self.mean = nn.Parameter(torch.zeros(cout))
            self.var = nn.Parameter(torch.zeros(cout))

        def forward(self, x):
            x = F.conv2d(x, self.weight, stride=self.stride, padding=self.padding)
            return F.relu(F.batch_norm(x, self.mean, self.var, bias=self.beta, eps=1e-3))

    def seq(*items):
        return nn.Sequential(OrderedDict(items))

    class A(nn.Module):
        def __init__(self, cin: int, pool: int):
            super().__init__()
            self.conv = Conv(cin, 64, 1)
            self.tower = seq(("conv", Conv(cin, 48, 1)), ("conv_1", Conv(48, 64, 5, padding=2)))
            self.tower_1 = seq(("conv", Conv(cin, 64, 1)), ("conv_1", Conv(64, 96, 3, padding=1)),
                               ("conv_2", Conv(96, 96, 3, padding=1)))
            self.tower_2 = seq(("pool", nn.AvgPool2d(3, 1, 1, count_include_pad=False)), ("conv", Conv(cin, pool, 1)))

        def forward(self, x):
            return torch.cat([self.conv(x), self.tower(x), self.tower_1(x), self.tower_2(x)], 1)

    class B(nn.Module):
        def __init__(self, cin: int):
            super().__init__()
            self.conv = Conv(cin, 384, 3, stride=2)
            self.tower = seq(("conv", Conv(cin, 64, 1)), ("conv_1", Conv(64, 96, 3, padding=1)),
                             ("conv_2", Conv(96, 96, 3, stride=2)))
            self.pool = nn.MaxPool2d(3, 2)

        def forward(self, x):
            return torch.cat([self.conv(x), self.tower(x), self.pool(x)], 1)

    class C(nn.Module):
        def __init__(self, cin: int, c7: int):
            super().__init__()
            row, col = {"kernel": (1, 7), "padding": (0, 3)}, {"kernel": (7, 1), "padding": (3, 0)}
            self.conv = Conv(cin, 192, 1)
            self.tower = seq(("conv", Conv(cin, c7, 1)), ("conv_1", Conv(c7, c7, **row)), ("conv_2", Conv(c7, 192, **col)))
            self.tower_1 = seq(("conv", Conv(cin, c7, 1)), ("conv_1", Conv(c7, c7, **col)), ("conv_2", Conv(c7, c7, **row)),
                               ("conv_3", Conv(c7, c7, **col)), ("conv_4", Conv(c7, 192, **row)))
            self.tower_2 = seq(("pool", nn.AvgPool2d(3, 1, 1, count_include_pad=False)), ("conv", Conv(cin, 192, 1)))

        def forward(self, x):
            return torch.cat([self.conv(x), self.tower(x), self.tower_1(x), self.tower_2(x)], 1)

    class D(nn.Module):
        def __init__(self, cin: int):
            super().__init__()
            self.tower = seq(("conv", Conv(cin, 192, 1)), ("conv_1", Conv(192, 320, 3, stride=2)))
            self.tower_1 = seq(("conv", Conv(cin, 192, 1)), ("conv_1", Conv(192, 192, (1, 7), padding=(0, 3))),
                               ("conv_2", Conv(192, 192, (7, 1), padding=(3, 0))), ("conv_3", Conv(192, 192, 3, stride=2)))
            self.pool = nn.MaxPool2d(3, 2)

        def forward(self, x):
            return torch.cat([self.tower(x), self.tower_1(x), self.pool(x)], 1)

    class E(nn.Module):
        def __init__(self, cin: int, average: bool):
            super().__init__()
            self.conv = Conv(cin, 320, 1)
            self.tower_conv = Conv(cin, 384, 1)
            self.tower_mixed_conv = Conv(384, 384, (1, 3), padding=(0, 1))
            self.tower_mixed_conv_1 = Conv(384, 384, (3, 1), padding=(1, 0))
            self.tower_1_conv = Conv(cin, 448, 1)
            self.tower_1_conv_1 = Conv(448, 384, 3, padding=1)
            self.tower_1_mixed_conv = Conv(384, 384, (1, 3), padding=(0, 1))
            self.tower_1_mixed_conv_1 = Conv(384, 384, (3, 1), padding=(1, 0))
            self.tower_2_pool = (nn.AvgPool2d(3, 1, 1, count_include_pad=False) if average
                                 else nn.MaxPool2d(3, 1, 1))
            self.tower_2_conv = Conv(cin, 192, 1)

        def forward(self, x):
            a = self.tower_conv(x)
            b = self.tower_1_conv_1(self.tower_1_conv(x))
            return torch.cat([self.conv(x), self.tower_mixed_conv(a), self.tower_mixed_conv_1(a),
                              self.tower_1_mixed_conv(b), self.tower_1_mixed_conv_1(b),
                              self.tower_2_conv(self.tower_2_pool(x))], 1)

    class Inception(nn.Module):
        def __init__(self):
            super().__init__()
            self.layers = seq(
                ("conv", Conv(3, 32, 3, stride=2)), ("conv_1", Conv(32, 32, 3)), ("conv_2", Conv(32, 64, 3, padding=1)),
                ("pool0", nn.MaxPool2d(3, 2)), ("conv_3", Conv(64, 80, 1)), ("conv_4", Conv(80, 192, 3)),
                ("pool1", nn.MaxPool2d(3, 2)), ("mixed", A(192, 32)), ("mixed_1", A(256, 64)), ("mixed_2", A(288, 64)),
                ("mixed_3", B(288)), ("mixed_4", C(768, 128)), ("mixed_5", C(768, 160)), ("mixed_6", C(768, 160)),
                ("mixed_7", C(768, 192)), ("mixed_8", D(768)), ("mixed_9", E(1280, True)), ("mixed_10", E(2048, False)),
                ("pool2", nn.AvgPool2d(8)))
            self.output = nn.Linear(2048, 1008)

        def forward(self, img, return_features: bool = False):
            n, c, height, width = img.shape
            x = img.to(torch.float32)
            theta = torch.eye(2, 3, device=x.device)
            theta[0, 2] += theta[0, 0] / width - theta[0, 0] / 299
            theta[1, 2] += theta[1, 1] / height - theta[1, 1] / 299
            theta = theta.to(x.dtype).unsqueeze(0).repeat([n, 1, 1])
            grid = F.affine_grid(theta, [n, c, 299, 299], align_corners=False)
            x = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
            x = (x - 128) / 128
            features = self.layers(x).reshape(-1, 2048)
            if return_features:
                return features
            return F.softmax(self.output(features), dim=1)

    return Inception()


def nvidia_names() -> dict[str, str]:
    """pytorch-fid's parameter name -> the NVIDIA layout's, for every tensor of the FID Inception."""
    conv = {"conv.weight": "weight", "bn.bias": "beta", "bn.running_mean": "mean", "bn.running_var": "var"}
    blocks = {
        "Conv2d_1a_3x3": "conv", "Conv2d_2a_3x3": "conv_1", "Conv2d_2b_3x3": "conv_2", "Conv2d_3b_1x1": "conv_3",
        "Conv2d_4a_3x3": "conv_4"}
    a = {"branch1x1": "conv", "branch5x5_1": "tower.conv", "branch5x5_2": "tower.conv_1", "branch3x3dbl_1": "tower_1.conv",
         "branch3x3dbl_2": "tower_1.conv_1", "branch3x3dbl_3": "tower_1.conv_2", "branch_pool": "tower_2.conv"}
    b = {"branch3x3": "conv", "branch3x3dbl_1": "tower.conv", "branch3x3dbl_2": "tower.conv_1",
         "branch3x3dbl_3": "tower.conv_2"}
    c = {"branch1x1": "conv", "branch7x7_1": "tower.conv", "branch7x7_2": "tower.conv_1", "branch7x7_3": "tower.conv_2",
         **{f"branch7x7dbl_{i}": f"tower_1.conv{'' if i == 1 else f'_{i - 1}'}" for i in range(1, 6)},
         "branch_pool": "tower_2.conv"}
    d = {"branch3x3_1": "tower.conv", "branch3x3_2": "tower.conv_1",
         **{f"branch7x7x3_{i}": f"tower_1.conv{'' if i == 1 else f'_{i - 1}'}" for i in range(1, 5)}}
    e = {"branch1x1": "conv", "branch3x3_1": "tower_conv", "branch3x3_2a": "tower_mixed_conv",
         "branch3x3_2b": "tower_mixed_conv_1", "branch3x3dbl_1": "tower_1_conv", "branch3x3dbl_2": "tower_1_conv_1",
         "branch3x3dbl_3a": "tower_1_mixed_conv", "branch3x3dbl_3b": "tower_1_mixed_conv_1", "branch_pool": "tower_2_conv"}
    mixed = dict(zip(["Mixed_5b", "Mixed_5c", "Mixed_5d", "Mixed_6a", "Mixed_6b", "Mixed_6c", "Mixed_6d", "Mixed_6e",
                      "Mixed_7a", "Mixed_7b", "Mixed_7c"],
                     [("mixed", a), ("mixed_1", a), ("mixed_2", a), ("mixed_3", b), ("mixed_4", c), ("mixed_5", c),
                      ("mixed_6", c), ("mixed_7", c), ("mixed_8", d), ("mixed_9", e), ("mixed_10", e)]))
    names = {"fc.weight": "output.weight", "fc.bias": "output.bias"}
    for ours, theirs in blocks.items():
        names.update({f"{ours}.{k}": f"layers.{theirs}.{v}" for k, v in conv.items()})
    for ours, (theirs, branches) in mixed.items():
        for branch, where in branches.items():
            names.update({f"{ours}.{branch}.{k}": f"layers.{theirs}.{where}.{v}" for k, v in conv.items()})
    return names


def save_torchscript(state: dict[str, np.ndarray], path: Path) -> None:
    """The FID Inception ``state`` (pytorch-fid's names) as a TorchScript file in NVIDIA's layout."""
    import torch

    assert all(np.all(v == 1) for k, v in state.items() if k.endswith("bn.weight")), "NVIDIA's layout has no BN scale"
    model = nvidia_layout()
    names = nvidia_names()
    theirs = {names[k]: torch.from_numpy(v) for k, v in state.items() if not k.endswith("bn.weight")}
    model.load_state_dict(theirs, strict=True)
    torch.jit.script(model.eval()).save(str(path))


MODES = {"clean": CLEAN_CASES, "legacy_pytorch": LEGACY_CASES, "legacy_tensorflow": LEGACY_CASES}


def run_clean_fid(work: Path, mode: str | None = None, case: str | None = None) -> None:
    """clean-fid's modes (or ``mode``) on their cases (or ``case``); steps may run in parallel."""
    import importlib.metadata

    import torch
    from cleanfid.features import build_feature_extractor
    from cleanfid.fid import fid_from_feats, get_folder_features, kernel_distance
    from cleanfid.utils import ResizeDataset

    os.environ["TORCH_HOME"] = str(work / "torch_home")
    write_pth(work)  # legacy_pytorch: pytorch-fid's file name in the hub cache
    script = Path("/tmp/inception-2015-12-05.pt")  # where clean-fid's InceptionV3W looks on Linux
    with locked():
        if not script.exists():
            save_torchscript(recipe_state(work), script.with_suffix(".partial"))
            script.with_suffix(".partial").rename(script)
    cpu = torch.device("cpu")
    versions = {p: importlib.metadata.version(p) for p in ("clean-fid", "torch", "torchvision", "numpy", "scipy", "pillow")}
    for mode_name in [mode] if mode else MODES:
        reference = "clean-fid" if mode_name == "clean" else f"clean-fid-{mode_name.replace('_', '-')}"
        model = build_feature_extractor(mode_name, cpu, use_dataparallel=False)
        for case_name in [case] if case else MODES[mode_name]:
            feats = {role: get_folder_features(str(work / case_name / role), model, num_workers=0, batch_size=32,
                                               device=cpu, mode=mode_name, verbose=False) for role in ("fake", "real")}
            np.random.seed(0)
            rows = set_rows(reference, case_name, fid_from_feats(feats["fake"], feats["real"]),
                            kernel_distance(feats["fake"], feats["real"]))
            entries = {f"{reference}/{case_name}/real": feats["real"][:2],
                       f"{reference}/{case_name}/fake": feats["fake"][-2:]}
            info = {"versions": {reference: versions}, "shims": {reference: (
                "inception-2015-12-05.pt made by run_fid_protocols.py (NVIDIA's layout and call, recipe weights)"
                if mode_name != "legacy_pytorch" else "pytorch-fid's file name put in TORCH_HOME (no download)")}}
            if mode_name != "legacy_tensorflow":  # its resize is inside the (made-here) TorchScript
                dataset = ResizeDataset(files(work, case_name, "real")[:2], mode=mode_name)
                info["resize_sha256"] = {reference: {case_name: sha(torch.stack([dataset[i] for i in range(2)]))}}
            write_rows(rows)
            update_store(entries, info)


def main() -> None:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("reference", choices=("torch-fidelity", "clean-fid"))
    parser.add_argument("--work", required=True, type=Path)
    parser.add_argument("--mode", choices=tuple(MODES), help="clean-fid: one mode (default: all)")
    parser.add_argument("--case", choices=CASES, help="clean-fid: one case of the mode (default: the mode's cases)")
    args = parser.parse_args()
    sys.path = [p for p in sys.path if Path(p or ".").resolve() != HERE.parents[1]]  # never the project
    if args.reference == "clean-fid":
        run_clean_fid(args.work, args.mode, args.case)
    else:
        run_torch_fidelity(args.work)


if __name__ == "__main__":
    main()
