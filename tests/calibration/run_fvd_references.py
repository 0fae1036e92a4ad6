"""Run VideoGPT's FVD code (and StyleGAN-V's Fréchet computation) on the FVD calibration inputs (not a test).

Two steps::

    # the project's env: the inputs (cabench synth --motion v2, a degraded copy), stored in tests/calibration/inputs
    /work/main/.venv/bin/python tests/calibration/run_fvd_references.py prepare --work /work/ref/fvd
    # VideoGPT's code in its own venv (torch, numpy, scipy; no code of the project imported)
    /work/venvs/videogpt/bin/python tests/calibration/run_fvd_references.py videogpt --work /work/ref/fvd \\
        --videogpt /work/.mirror/wilson1yan+VideoGPT/repo --stylegan-v /work/.mirror/universome+stylegan-v/repo

``prepare`` renders two synthetic sequences (``cabench synth --motion v2``: 48 frames at 64 x 64, and 32
frames at 80 x 80 centre-cropped to 80 x 48), degrades each with the ``degraded`` adapter (``oversmooth``
1.5 and ``flicker`` 0.15) and stores the real and generated clips (16 frames each, consecutive,
non-overlapping) as ``inputs/fvd/<case>.npz``; it also writes the recipe's random weights without
batch-norm statistics (``tests/fvd_recipe.py``) to ``<work>/weights.npz``.

``videogpt`` takes VideoGPT's ``videogpt/fvd/fvd.py``, ``videogpt/fvd/pytorch_i3d.py`` and
``videogpt/data.py`` from its git tree (commit recorded) into ``<work>/src`` and imports them with these
shims (recorded in ``fvd.json``):

1. ``videogpt/__init__.py`` is not run (it imports the VQ-VAE and GPT): ``videogpt`` is a bare package;
2. ``videogpt/data.py`` imports ``h5py``, ``pytorch_lightning`` and torchvision's ``VideoClips`` at module
   level for its datasets: empty stand-in modules (``preprocess`` uses none of them);
3. ``get_logits`` asserts a multiple of 16 videos: each set is padded to 16 with copies of its first
   clip and the padding's outputs dropped (the network is in eval mode: each clip's logits do not
   depend on the others).

Its ``InceptionI3d(400, in_channels=3)`` gets the recipe's weights, then its batch-norm running statistics
are measured by itself on the real clips of both cases (``preprocess``; train mode, momentum None,
no gradient), stored in ``tests/calibration/i3d_bn_stats.npz``; ``torch.save(i3d.state_dict())`` writes
``<work>/i3d_pretrained_400.pt``. Per case: ``get_fvd_logits`` of the real and the generated clips
(features to ``fvd_features.npz``), the SHA-256 of ``preprocess``'s float32 output, and
``frechet_distance`` of the features as VideoGPT runs it (float32) and on float64 features.

StyleGAN-V's Fréchet computation: its ``compute_fvd`` (``src/metrics/frechet_video_distance.py``) run
on the same features, with ``metric_utils.compute_feature_stats_for_dataset`` replaced by a function
returning its own ``FeatureStats`` filled with them (shim 4; ``src.dnnlib`` and
``src.training.dataset`` stand-ins, shim 5): its biased covariance and ``scipy.linalg.sqrtm``.

``stylegan-v-fid`` (VideoGPT's venv) runs StyleGAN-V's ``compute_fid``
(``src/metrics/frechet_inception_distance.py``, StyleGAN2-ADA's: biased covariances, ``scipy.linalg.sqrtm``)
with shims 4 and 5 on the Inception features of the set-metric calibration (``set_features.npz``: the
pytorch-fid features of its four cases, 20-24 frames each; the computation, not the network, is what
this checks) and stores its values in ``fvd.json`` (``stylegan_v_fid``)::

    /work/venvs/videogpt/bin/python tests/calibration/run_fvd_references.py stylegan-v-fid --work /work/ref/fvd

``stylegan-v-shim`` (VideoGPT's venv, after ``videogpt``) writes a stand-in for StyleGAN-V's TorchScript
(shim 6, see :func:`stylegan_v_shim`) and its features on the non-square case::

    /work/venvs/videogpt/bin/python tests/calibration/run_fvd_references.py stylegan-v-shim --work /work/ref/fvd
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import types
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
INPUTS = HERE / "inputs" / "fvd"
INFO = HERE / "fvd.json"
FEATURES = HERE / "fvd_features.npz"
BN_STATS = HERE / "i3d_bn_stats.npz"
CLIP = 16
# case: (frames, synth side, crop height, crop width, synth seed, degradation, strength)
CASES = {"synth-64x64": (48, 64, 64, 64, 7, "oversmooth", 1.5),
         "synth-80x48": (32, 80, 48, 80, 8, "flicker", 0.15)}
SHIMS = [
    "videogpt/__init__.py not run (imports the VQ-VAE and GPT): a bare package module",
    "h5py, pytorch_lightning, torchvision.datasets.video_utils: empty modules for videogpt/data.py's imports",
    "get_logits needs a multiple of 16 videos: each set padded to 16 with copies of its first clip, outputs dropped",
    "StyleGAN-V compute_fvd: metric_utils.compute_feature_stats_for_dataset returns its FeatureStats filled with "
    "the given features (real first, then generated); rewrite_opts_for_gen_dataset returns its argument",
    "src.dnnlib (EasyDict: a dict with attribute access) and src.training.dataset: stand-in modules",
]


def prepare(work: Path) -> None:
    """The inputs (project env): see the module docstring."""
    sys.path[:0] = [str(HERE.parent.parent), str(HERE.parent)]
    from fvd_recipe import i3d_weights, project_shapes
    from PIL import Image

    from baselines.degradations import Degraded
    from benchmark.datasets.base import Sequence
    from benchmark.io import ArrayFrames

    INPUTS.mkdir(exist_ok=True)
    for name, (frames, side, height, width, seed, degradation, strength) in CASES.items():
        out = work / "synth" / name
        subprocess.run([sys.executable, "-m", "benchmark.cli", "synth", "--out", str(out), "--frames", str(frames),
                        "--size", str(side), "--seed", str(seed), "--motion", "v2", "--overwrite", "--quiet"], check=True)
        files = sorted((out / "astronaut" / "images").glob("*.png"))
        top, left = (side - height) // 2, (side - width) // 2
        real = np.stack([np.asarray(Image.open(f).convert("RGB"))[top:top + height, left:left + width] for f in files])
        sequence = Sequence(name=name, frames=ArrayFrames(np.ascontiguousarray(real), name=name))
        fake = Degraded(degradation, strength, seed=seed).outputs(sequence).frames.read(sequence.frame_ids).rgb
        fake = np.rint(np.clip(fake, 0, 255)).astype(np.uint8)
        clips = len(real) // CLIP
        np.savez_compressed(INPUTS / f"{name}.npz", real=real[: clips * CLIP].reshape(clips, CLIP, height, width, 3),
                            fake=fake[: clips * CLIP].reshape(clips, CLIP, height, width, 3))
    np.savez(work / "weights.npz", **i3d_weights(project_shapes()))
    print("inputs:", sorted(p.name for p in INPUTS.glob("*.npz")))


def _git_show(repo: Path, path: str) -> str:
    return subprocess.run(["git", f"--git-dir={repo}", "show", f"HEAD:{path}"], check=True, capture_output=True,
                          text=True).stdout


def _commit(repo: Path) -> str:
    return subprocess.run(["git", f"--git-dir={repo}", "rev-parse", "HEAD"], check=True, capture_output=True,
                          text=True).stdout.strip()


def _stub(name: str, **attributes) -> types.ModuleType:
    module = types.ModuleType(name)
    module.__dict__.update(attributes)
    sys.modules[name] = module
    return module


def videogpt(work: Path, repo: Path, stylegan_repo: Path) -> None:
    """VideoGPT's features and FVD, StyleGAN-V's FVD of the same features (see the module docstring)."""
    import torch

    torch.set_num_threads(2)
    source = work / "src"
    for path in ("videogpt/fvd/fvd.py", "videogpt/fvd/pytorch_i3d.py", "videogpt/fvd/__init__.py", "videogpt/data.py"):
        (source / path).parent.mkdir(parents=True, exist_ok=True)
        (source / path).write_text(_git_show(repo, path))
    package = _stub("videogpt")
    package.__path__ = [str(source / "videogpt")]  # shim 1
    for name in ("h5py", "pytorch_lightning", "torchvision", "torchvision.datasets", "torchvision.datasets.video_utils"):
        _stub(name, VideoClips=None, LightningDataModule=object)  # shim 2
    from videogpt.fvd.fvd import frechet_distance, get_fvd_logits, preprocess
    from videogpt.fvd.pytorch_i3d import InceptionI3d

    i3d = InceptionI3d(400, in_channels=3)
    with np.load(work / "weights.npz") as stored:
        weights = {key: torch.from_numpy(stored[key]) for key in stored.files}
    state = i3d.state_dict()
    expected = {k for k in state if not k.endswith(("running_mean", "running_var", "num_batches_tracked"))}
    assert set(weights) == expected, sorted(set(weights) ^ expected)[:5]
    assert all(tuple(weights[k].shape) == tuple(state[k].shape) for k in weights)
    i3d.load_state_dict(weights, strict=False)

    cases = {name: dict(np.load(INPUTS / f"{name}.npz")) for name in CASES}
    norms = [m for m in i3d.modules() if isinstance(m, torch.nn.BatchNorm3d)]
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None  # cumulative average over the batches
    i3d.train()
    with torch.no_grad():
        for data in cases.values():
            i3d(preprocess(data["real"]))
    i3d.eval()
    names = [k for k in i3d.state_dict() if k.endswith(("running_mean", "running_var"))]
    bn = {k: i3d.state_dict()[k].numpy().astype(np.float32) for k in names}
    np.savez(BN_STATS, **bn)
    state = {k: v for k, v in i3d.state_dict().items() if not k.endswith("num_batches_tracked")}
    torch.save(i3d.state_dict(), work / "i3d_pretrained_400.pt")
    digest = hashlib.sha256()
    for key in sorted(state):
        value = np.ascontiguousarray(state[key].numpy(), dtype=np.float32)
        digest.update(f"{key}|{value.shape}|".encode())
        digest.update(value.tobytes())

    stylegan_fvd = _stylegan_v(stylegan_repo, work)
    features, results = {}, {}
    for name, data in cases.items():
        row = {}
        logits = {}
        for role in ("real", "fake"):
            videos = data[role]
            padded = np.concatenate([videos, np.repeat(videos[:1], 16 - len(videos), axis=0)])  # shim 3
            logits[role] = get_fvd_logits(padded, i3d=i3d, device=torch.device("cpu"))[: len(videos)]
            features[f"{name}/{role}"] = logits[role].numpy()
            prepared = preprocess(videos).numpy()
            row[f"preprocess_sha256_{role}"] = hashlib.sha256(np.ascontiguousarray(prepared, np.float32).tobytes()).hexdigest()
        row["fvd_float32"] = float(frechet_distance(logits["fake"].clone(), logits["real"].clone()))
        row["fvd_float64"] = float(frechet_distance(logits["fake"].double(), logits["real"].double()))
        row["stylegan_v_fvd"] = stylegan_fvd(logits["real"].numpy(), logits["fake"].numpy())
        row["clips"] = len(data["real"])
        row["input_sha256"] = hashlib.sha256(data["real"].tobytes() + data["fake"].tobytes()).hexdigest()
        results[name] = row
        print(name, row)
    np.savez(FEATURES, **features)
    INFO.write_text(json.dumps({
        "videogpt_commit": _commit(repo), "stylegan_v_commit": _commit(stylegan_repo),
        "torch": torch.__version__, "numpy": np.__version__, "scipy": __import__("scipy").__version__,
        "weights_checksum": digest.hexdigest(), "shims": SHIMS, "cases": results,
    }, indent=2, sort_keys=True) + "\n")


def _stylegan_v(repo: Path, work: Path, metric: str = "fvd"):
    """StyleGAN-V's ``compute_fvd`` (or ``compute_fid``, ``metric="fid"``) as a function of (real,
    generated) features (shims 4 and 5)."""
    source = work / "stylegan-v"
    for path in ("src/metrics/frechet_video_distance.py", "src/metrics/frechet_inception_distance.py",
                 "src/metrics/metric_utils.py"):
        (source / path).parent.mkdir(parents=True, exist_ok=True)
        (source / path).write_text(_git_show(repo, path))

    class EasyDict(dict):
        def __getattr__(self, name):
            try:
                return self[name]
            except KeyError:
                raise AttributeError(name) from None

        def __setattr__(self, name, value):
            self[name] = value

    _stub("src").__path__ = [str(source / "src")]
    _stub("src.dnnlib", EasyDict=EasyDict)
    _stub("src.training")
    _stub("src.training.dataset", video_to_image_dataset_kwargs=None)
    import src
    src.dnnlib = sys.modules["src.dnnlib"]
    from src.metrics import frechet_inception_distance, frechet_video_distance, metric_utils

    def compute(real: np.ndarray, fake: np.ndarray) -> float:
        queue = [real, fake]

        def stats(**kwargs):
            filled = metric_utils.FeatureStats(capture_mean_cov=True)
            filled.append(queue.pop(0))
            return filled

        metric_utils.compute_feature_stats_for_dataset = stats
        metric_utils.rewrite_opts_for_gen_dataset = lambda opts: opts
        opts = EasyDict(dataset_kwargs=EasyDict(resolution=256), generator_as_dataset=True, rank=0)
        if metric == "fid":
            return float(frechet_inception_distance.compute_fid(opts, max_real=len(real), num_gen=len(fake)))
        return float(frechet_video_distance.compute_fvd(opts, max_real=len(real), num_gen=len(fake), num_frames=16))

    return compute


def stylegan_v_shim(work: Path, repo: Path) -> None:
    """A TorchScript in the role of StyleGAN-V's ``i3d_torchscript.pt`` (shim 6; the real file cannot be
    obtained here): VideoGPT's ``InceptionI3d`` with the calibration's weights and batch-norm eps 1e-3
    (TF-Hub's), traced at (1, 3, 16, 224, 224), inside a scripted module with StyleGAN-V's call
    ``forward(x, rescale, resize, return_features)`` doing what the project assumes (``x / 255 * 2 - 1``;
    every frame bilinear to 224 x 224, ``align_corners=False``; the logits). Its output on the
    non-square case's real clips goes to ``fvd_features.npz`` (``stylegan-v-shim/...``); the project's
    ``stylegan-v`` protocol reading this file must give the same features. This checks the reading of
    a TorchScript and the protocol's plumbing, not StyleGAN-V's real file."""
    import torch
    import torch.nn.functional as F

    torch.set_num_threads(2)
    package = _stub("videogpt")
    package.__path__ = [str(work / "src" / "videogpt")]  # shim 1 (videogpt step's extracted sources)
    from videogpt.fvd.pytorch_i3d import InceptionI3d

    i3d = InceptionI3d(400, in_channels=3)
    i3d.load_state_dict(torch.load(work / "i3d_pretrained_400.pt"))
    for module in i3d.modules():
        if isinstance(module, torch.nn.BatchNorm3d):
            module.eps = 1e-3
    i3d.eval()
    with torch.no_grad():
        traced = torch.jit.trace(i3d, torch.zeros(1, 3, 16, 224, 224))

    class Detector(torch.nn.Module):
        def __init__(self, network: torch.nn.Module):
            super().__init__()
            self.network = network

        def forward(self, x: torch.Tensor, rescale: bool = False, resize: bool = False,
                    return_features: bool = False) -> torch.Tensor:
            if rescale:
                x = x / 255 * 2 - 1
            if resize:
                b, c, t, h, w = x.shape
                frames = x.permute(0, 2, 1, 3, 4).reshape(b * t, c, h, w)
                frames = F.interpolate(frames, size=(224, 224), mode="bilinear", align_corners=False)
                x = frames.reshape(b, t, c, 224, 224).permute(0, 2, 1, 3, 4).contiguous()
            logits = self.network(x)
            return logits if return_features else torch.softmax(logits, dim=1)

    detector = torch.jit.script(Detector(traced))
    detector.save(str(work / "i3d_torchscript.pt"))
    real = np.load(INPUTS / "synth-80x48.npz")["real"]
    with torch.no_grad():
        clips = torch.from_numpy(real).permute(0, 4, 1, 2, 3).contiguous()  # uint8 (N, C, T, H, W)
        features = torch.cat([detector(clip[None], rescale=True, resize=True, return_features=True) for clip in clips])
    stored = dict(np.load(FEATURES))
    stored["stylegan-v-shim/synth-80x48/real"] = features.numpy()
    np.savez(FEATURES, **stored)
    info = json.loads(INFO.read_text())
    info["stylegan_v_shim"] = {"file_sha256": hashlib.sha256((work / "i3d_torchscript.pt").read_bytes()).hexdigest(),
                               "torch": torch.__version__, "case": "synth-80x48", "clips": len(real),
                               "doc": stylegan_v_shim.__doc__.split(". This")[0].strip()}
    if SHIM_6 not in info["shims"]:
        info["shims"].append(SHIM_6)
    INFO.write_text(json.dumps(info, indent=2, sort_keys=True) + "\n")
    print("stylegan-v shim features", features.shape, float(features.abs().max()))


SHIM_6 = ("StyleGAN-V's i3d_torchscript.pt cannot be obtained: a stand-in TorchScript (VideoGPT's InceptionI3d traced, "
          "batch-norm eps 1e-3, the assumed rescale/resize/return_features call), for the plumbing only")


def stylegan_v_fid(work: Path, repo: Path) -> None:
    """StyleGAN-V's ``compute_fid`` on ``set_features.npz``'s cases, into ``fvd.json`` (module docstring)."""
    fid = _stylegan_v(repo, work, metric="fid")
    with np.load(HERE / "set_features.npz") as stored:
        cases = sorted({key.split("/")[0] for key in stored.files})
        values = {case: fid(stored[f"{case}/real"].astype(np.float32), stored[f"{case}/fake"].astype(np.float32))
                  for case in cases}
    info = json.loads(INFO.read_text())
    info["stylegan_v_fid"] = {"features": "tests/calibration/set_features.npz (pytorch-fid features)",
                              "stylegan_v_commit": _commit(repo), "scipy": __import__("scipy").__version__,
                              "values": values}
    INFO.write_text(json.dumps(info, indent=2, sort_keys=True) + "\n")
    print(json.dumps(values, indent=1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("step", choices=("prepare", "videogpt", "stylegan-v-shim", "stylegan-v-fid"))
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--videogpt", type=Path, default=Path("/work/.mirror/wilson1yan+VideoGPT/repo"))
    parser.add_argument("--stylegan-v", type=Path, default=Path("/work/.mirror/universome+stylegan-v/repo"))
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    if args.step == "prepare":
        prepare(args.work)
    elif args.step == "stylegan-v-fid":
        stylegan_v_fid(args.work, args.stylegan_v)
    elif args.step == "stylegan-v-shim":
        stylegan_v_shim(args.work, args.videogpt)
    else:
        videogpt(args.work, args.videogpt, args.stylegan_v)


if __name__ == "__main__":
    main()
