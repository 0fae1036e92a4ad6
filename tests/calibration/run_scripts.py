"""Make the calibration table by running the published evaluation scripts themselves.

This is not a test and not part of the package: it is how ``tests/calibration/*.csv`` were made,
kept so that anyone can re-make them. The scripts' code is never copied into the project: it is
imported or run from a checkout of each repository outside it (``--sources``, one folder per
repository named ``<owner>+<repo>``, at the commits in ``SCRIPTS``). Run it in a scratch
environment that has the project installed plus ``pytorch_msssim`` and ``absl-py``::

    python tests/calibration/run_scripts.py --sources /path/to/checkouts --work /tmp/calibration \\
        --old-skimage /path/to/scikit_image-0.16.2-wheel-unpacked

Each script reads the files it reads in its own repository's layout (written here from the
recipe in ``tests/calibration_recipe.py``) and computes its numbers with its own code; what had to
be changed for it to run here (a package it imports for something else, CUDA placement on a
machine without a GPU, APIs current libraries removed) is stubbed minimally, and every such step
is listed in ``SHIMS`` and written to the manifest.

The scripts run on the stored inputs (``tests/calibration/inputs``, read by
``calibration_recipe.stored_inputs``), so a re-run reproduces the table from exactly the files the
tests read, on any CPU. ``--remake-inputs`` first regenerates them from the recipe and stores them
(``calibration_recipe.save_inputs``): needed only when the renderer or a degradation changed, since
on another CPU the recipe's frames differ from the stored ones by rounding (see that module).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import runpy
import subprocess
import sys
import types
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # tests/, for the recipe

from calibration_recipe import (  # noqa: E402
    CASES,
    IMAGE_CASES,
    TOF_CASES,
    WARP_CASES,
    Case,
    analytic_flows,
    make_inputs,
    save_inputs,
    stored_inputs,
)

SCRIPTS = {
    "imavatar": {"repository": "zhengyuf/IMavatar", "commit": "923b60aa46bae49478830af98cc839a1cf33e273",
                 "paths": ["code/utils/calculate_metrics.py"],
                 "how": "calculate_metrics.run(output_dir, gt_dir) on gt_dir/{image,mask}/N.png + flame_params.json "
                        "(flame_keypoints in [-1,1] = pixels / (size / 2) - 1) and output_dir/rgb/N.png; per-frame "
                        "values read from the results_rgb.npz it writes (mae_l -> l1, mse_l -> l2, psnr_l, ssim_l, "
                        "perceptual_l -> lpips)"},
    "pointavatar": {"repository": "zhengyuf/PointAvatar", "commit": "774bb24abf2986a5a456095b697a214556af472c",
                    "paths": ["code/utils/metrics.py", "code/utils/plots.py", "code/scripts/test.py"],
                    "how": "plots.plot_image(prediction / 255 as the render, fill=True) writes rgb/ and "
                           "rgb_erode_dilate/ (its rgb/ output is checked equal to the prediction); then "
                           "metrics.run(output_dir, gt_dir, 'rgb_erode_dilate') as test.py calls it (default pass, "
                           "no_cloth=False); per-frame values from results_rgb_erode_dilate.npz"},
    "insta": {"repository": "Zielon/INSTA-pytorch", "commit": "e680e492822d6308f272fa7d6b46ea7f86fc78c0",
              "paths": ["insta/utils.py", "insta/provider.py"],
              "how": "frames loaded as provider.py loads them (cv2.imread IMREAD_UNCHANGED, BGR(A)->RGB(A), "
                     "float32 / 255; the five lines are the runner's, the file is read by the script's own "
                     "calls), composited by Trainer.eval_step (called with a stand-in model that returns the "
                     "prediction; an RGBA prediction is composited by the same eval_step lines), scored by "
                     "utils.PSNRMeter and utils.LPIPSMeter (net='alex'), one frame per update"},
    "nerface": {"repository": "gafniguy/4D-Facial-Avatars", "commit": "e038d08984efd8eb285056bd616161ddc289de03",
                "paths": ["nerface_code/nerf-pytorch/nerf/metrics.py"],
                "how": "metrics.two_folders(gt_dir, generated_dir) with lpips_fn = lpips.LPIPS(net='alex') as its "
                       "__main__ sets it; per-frame values recorded from its ScalarMetric.update calls (the "
                       "metrics.txt it writes rounds to 6 decimals); frames with alpha are given as the RGB files "
                       "of their composite on white (cabench's reader), since the script's LPIPS takes 3 channels"},
    "nha": {"repository": "philgras/neural-head-avatars", "commit": "0048afe9c9034157c63838801e9a2dd3126f806e",
            "paths": ["nha/evaluation/metrics.py", "nha/evaluation/eval_suite.py", "nha/util/general.py",
                      "nha/data/real.py"],
            "how": "frames loaded as nha/data/real.py loads them (ttf.to_tensor(Image.open(f).convert('RGBA')), "
                   "(rgba[:3] - 0.5) / 0.5), background filled by nha.util.general.fill_tensor_background with the "
                   "matte (alpha / 255; all ones without alpha), as eval_suite.evaluate_models does with "
                   "digitize_segmap(seg) (a binary matte) and, with blur_seg, with a soft one; scored by "
                   "eval_suite.Evaluator(metrics=[L1, L2, PSNR, LPIPS]) and a second Evaluator for MS_SSIM "
                   "(its AssertionError below 161 px is recorded)"},
    "tecogan": {"repository": "thunil/TecoGAN", "commit": "bc747a4651c1e08bd0a73bed08c4cb9fac99b4d5",
                "paths": ["metrics.py"],
                "how": "metrics.py run as __main__ (runpy) with --results / --targets folders of PNG frames; "
                       "per-pair tOF read from its list_dict['tOF'] (the metrics.csv it writes holds the same "
                       "values as float32); pair k is frames (2 + k, 3 + k) (cutfr = 2)"},
    "lai": {"repository": "phoenix104104/fast_blind_video_consistency", "commit": "bce0c7eff41747ad4870f906c4b31cf96061ed80",
            "paths": ["evaluate_WarpError.py", "utils.py", "compute_flow_occlusion.py"],
            "how": "flows given (the recipe's analytic_flows, written with utils.save_flo); occlusion by "
                   "utils.detect_occlusion(bw_flow, fw_flow) as compute_flow_occlusion.py calls it, written with "
                   "utils.save_img; evaluate_WarpError.py run as __main__ (runpy) on one two-frame video per pair "
                   "(frames written as PNG under the .jpg names it globs; cv2.imread reads them by content), "
                   "per-pair values read from its err_all"},
}

SHIMS = {
    "imavatar": ["face_alignment: stub module (the script's keypoint error is not calibrated; the stub's "
                 "get_landmarks returns zeros)"],
    "pointavatar": ["trimesh: stub module (plots.py imports it for point clouds only)"],
    "insta": ["loguru, mcubes, tensorboardX, trimesh, torch_ema: stub modules (imported by insta/utils.py for "
              "training and meshes only)"],
    "nerface": ["skimage.measure: compare_ssim / compare_psnr from scikit-image 0.16.2's own pure-Python modules "
                "(skimage/measure/{_structural_similarity,simple_metrics}.py, skimage/metrics/*, util/dtype.py, "
                "util/arraycrop.py, _shared/utils.py from the 0.16.2 wheel), since current scikit-image removed "
                "them and 0.16.2 has no wheel for this Python; numpy.bool8 restored as numpy.bool_ (an alias "
                "NumPy 2 removed, named in 0.16.2's dtype table) and numpy.lib.arraypad as numpy.lib._arraypad_impl "
                "(where NumPy 2 moved the _as_pairs that util/arraycrop.py imports)"],
    "nha": ["face_alignment, cpbd, pytorch_lightning, nha.models, nha.util.render: stub modules (landmark and "
            "sharpness metrics, training and rendering only)"],
    "tecogan": ["skimage.measure.compare_ssim: as for nerface (imported for its SSIM, not calibrated)",
                "IPython: stub module (LPIPSmodels imports IPython.embed for debugging)",
                "CUDA placement (.cuda(), .to('cuda'), torch.load of CUDA tensors) mapped to the CPU: the script's "
                "LPIPS model asks for a GPU "
                "(use_gpu=True); its LPIPS / tLP numbers are not calibrated"],
    "lai": ["networks package: stub holding only resample2d_package.modules.resample2d.Resample2d (FlowNet2's "
            "CUDA extension), standing in as torch's grid_sample (bilinear, border, align_corners=True, pixel "
            "coordinates normalised to [-1, 1]) in float64, returned as float32",
            "CUDA placement (.cuda(), torch.device('cuda') in .to(), torch.load) mapped to the CPU",
            "numpy.fromfile(..., count=1) returns its one element (a NumPy scalar), since NumPy 2 no longer "
            "converts a 1-element array to int as utils.read_flo does"],
}


# ---------------------------------------------------------------------------- shims


def stub_modules(*names: str) -> None:
    """Empty stand-ins for packages a script imports for something the calibration does not use;
    any attribute is a placeholder class."""

    class Placeholder:
        def __init__(self, *args, **kwargs):
            pass

    def placeholder(attribute: str):
        if attribute.startswith("__"):
            raise AttributeError(attribute)
        return Placeholder

    for name in names:
        module = types.ModuleType(name)
        module.__getattr__ = placeholder  # type: ignore[attr-defined]
        module.__path__ = []  # a package, so sub-modules can be stubbed too
        sys.modules[name] = module


def old_skimage_measure(wheel_root: Path) -> None:
    """``skimage.measure`` with compare_ssim / compare_psnr from scikit-image 0.16.2's own files."""
    import tempfile

    source = Path(wheel_root) / "skimage"
    package = Path(tempfile.mkdtemp()) / "skimage_0162"
    files = ["metrics/_structural_similarity.py", "metrics/simple_metrics.py", "measure/_structural_similarity.py",
             "measure/simple_metrics.py", "util/dtype.py", "util/arraycrop.py", "_shared/utils.py", "_shared/_warnings.py"]
    for name in files:
        (package / name).parent.mkdir(parents=True, exist_ok=True)
        (package / name).write_text((source / name).read_text())
    (package / "__init__.py").write_text("")
    (package / "_shared" / "__init__.py").write_text("")
    (package / "util" / "__init__.py").write_text("from skimage.util import img_as_float  # for _shared.utils\n")
    (package / "metrics" / "__init__.py").write_text(
        "from .simple_metrics import mean_squared_error, normalized_root_mse, peak_signal_noise_ratio\n"
        "from ._structural_similarity import structural_similarity\n")
    (package / "measure" / "__init__.py").write_text(
        "from .simple_metrics import compare_mse, compare_nrmse, compare_psnr\n"
        "from ._structural_similarity import compare_ssim\n")
    sys.path.insert(0, str(package.parent))
    import skimage  # noqa: F401  (the current package, for everything else)

    np.bool8 = np.bool_  # util/dtype.py of 0.16.2 names the alias NumPy 2 removed
    sys.modules.setdefault("numpy.lib.arraypad", importlib.import_module("numpy.lib._arraypad_impl"))  # util/arraycrop.py

    sys.modules["skimage.measure"] = importlib.import_module("skimage_0162.measure")


def cuda_on_cpu() -> None:
    """Map the scripts' hard-coded CUDA placement to the CPU (this machine has no GPU)."""
    import torch

    def cpu(value):
        if isinstance(value, torch.device) and value.type == "cuda":
            return torch.device("cpu")
        if isinstance(value, str) and value.startswith("cuda"):
            return "cpu"
        return value

    tensor_to, module_to, load = torch.Tensor.to, torch.nn.Module.to, torch.load
    torch.load = lambda *args, **kwargs: load(*args, **{"map_location": "cpu", **kwargs})
    torch.Tensor.cuda = lambda self, *args, **kwargs: self
    torch.nn.Module.cuda = lambda self, *args, **kwargs: self
    torch.Tensor.to = lambda self, *args, **kwargs: tensor_to(self, *map(cpu, args), **{k: cpu(v) for k, v in kwargs.items()})
    torch.nn.Module.to = lambda self, *args, **kwargs: module_to(self, *map(cpu, args), **{k: cpu(v) for k, v in kwargs.items()})


def stub_resample2d() -> None:
    """The ``networks`` package Lai et al.'s utils.py imports Resample2d from, holding only it.

    FlowNet2's ``Resample2d`` is a CUDA extension; the stand-in is the same operation from torch:
    bilinear sampling at (x + u, y + v) in pixel coordinates with the neighbours clamped to the
    frame, i.e. ``grid_sample(mode="bilinear", padding_mode="border", align_corners=True)`` on
    coordinates normalised to [-1, 1], in float64 and returned as float32.
    """
    import torch

    class Resample2d(torch.nn.Module):
        def __init__(self, kernel_size=1):
            super().__init__()
            assert kernel_size == 1

        def forward(self, input1, input2):
            _, _, height, width = input1.shape
            ys, xs = torch.meshgrid(torch.arange(height, dtype=torch.float64), torch.arange(width, dtype=torch.float64),
                                    indexing="ij")
            flow = input2.double()
            grid = torch.stack([2 * (xs + flow[:, 0]) / max(width - 1, 1) - 1,
                                2 * (ys + flow[:, 1]) / max(height - 1, 1) - 1], dim=-1)
            warped = torch.nn.functional.grid_sample(input1.double(), grid, mode="bilinear", padding_mode="border",
                                                     align_corners=True)
            return warped.float()

    stub_modules("networks", "networks.resample2d_package", "networks.resample2d_package.modules")
    module = types.ModuleType("networks.resample2d_package.modules.resample2d")
    module.Resample2d = Resample2d
    sys.modules[module.__name__] = module


def load_module(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


# ---------------------------------------------------------------------------- inputs as files


def write_png(path: Path, array: np.ndarray) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.ascontiguousarray(array)).save(path)


def split_alpha(frames: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """(colour as stored, alpha uint8 or None)."""
    if frames.shape[-1] == 4:
        return frames[..., :3], frames[..., 3]
    return frames, None


def reader_composite(frames: np.ndarray) -> np.ndarray:
    """The uint8 composite on white that cabench's frame reader makes (what an RGB file holds)."""
    from benchmark.io import ArrayFrames

    return ArrayFrames(frames).read(list(range(len(frames)))).rgb


def write_imavatar_layout(case: Case, inputs, gt_dir: Path, pred_dir: Path) -> None:
    """IMavatar / PointAvatar layout: image/N.png (colour as stored), mask/N.png (3-channel matte),
    flame_params.json (flame_keypoints in [-1,1]), predictions as N.png (1-based)."""
    colour, alpha = split_alpha(inputs.gt)
    frames = []
    for i in range(case.frames):
        write_png(gt_dir / "image" / f"{i + 1}.png", colour[i])
        matte = np.full(colour.shape[1:3], 255, np.uint8) if alpha is None else alpha[i]
        write_png(gt_dir / "mask" / f"{i + 1}.png", np.repeat(matte[..., None], 3, axis=-1))
        keypoints = inputs.landmarks[i] / (np.array([case.width, case.height]) / 2.0) - 1.0
        frames.append({"file_path": f"./image/{i + 1}", "expression": [0.0] * 50, "pose": [0.0] * 15,
                       "flame_keypoints": keypoints.tolist()})
        write_png(pred_dir / f"{i + 1}.png", inputs.pred[i])
    (gt_dir / "flame_params.json").write_text(json.dumps({"frames": frames}))


# ---------------------------------------------------------------------------- one runner per script


def run_imavatar(source: Path, case: Case, inputs, work: Path) -> list[dict]:
    stub_modules("face_alignment")
    sys.modules["face_alignment"].FaceAlignment = lambda *a, **k: types.SimpleNamespace(
        get_landmarks=lambda image: [np.zeros((68, 2))])
    sys.modules["face_alignment"].LandmarksType = types.SimpleNamespace(_2D=None)
    script = load_module(source / "zhengyuf+IMavatar/code/utils/calculate_metrics.py", "imavatar_calculate_metrics")
    gt_dir, out_dir = work / "gt", work / "out"
    write_imavatar_layout(case, inputs, gt_dir, out_dir / "rgb")
    script.run(str(out_dir), str(gt_dir))
    results = np.load(out_dir / "results_rgb.npz")
    return [{"frame": int(name[:-4]) - 1, "l1": results["mae_l"][k], "l2": results["mse_l"][k],
             "psnr": results["psnr_l"][k], "ssim": results["ssim_l"][k], "lpips": results["perceptual_l"][k]}
            for k, name in enumerate(results["filenames"])]


def run_pointavatar(source: Path, case: Case, inputs, work: Path) -> list[dict]:
    import torch

    stub_modules("trimesh")
    code = source / "zhengyuf+PointAvatar/code/utils"
    plots = load_module(code / "plots.py", "pointavatar_plots")
    script = load_module(code / "metrics.py", "pointavatar_metrics")
    gt_dir, out_dir = work / "gt", work / "out"
    write_imavatar_layout(case, inputs, gt_dir, work / "given")
    out_dir.mkdir(parents=True, exist_ok=True)
    for i in range(case.frames):
        render = inputs.pred[i].reshape(1, case.height * case.width, -1).astype(np.float32) / 255
        plots.plot_image(torch.from_numpy(render), str(out_dir), i + 1, 1, [case.height, case.width], "rgb")
        from PIL import Image

        assert np.array_equal(np.asarray(Image.open(out_dir / "rgb" / f"{i + 1}.png")), inputs.pred[i])
    script.run(str(out_dir), str(gt_dir), "rgb_erode_dilate")
    results = np.load(out_dir / "results_rgb_erode_dilate.npz")
    return [{"frame": int(name[:-4]) - 1, "l1": results["mae_l"][k], "l2": results["mse_l"][k],
             "psnr": results["psnr_l"][k], "ssim": results["ssim_l"][k], "lpips": results["perceptual_l"][k]}
            for k, name in enumerate(results["filenames"])]


def run_insta(source: Path, case: Case, inputs, work: Path) -> list[dict]:
    import cv2
    import torch

    stub_modules("loguru", "mcubes", "tensorboardX", "trimesh", "torch_ema")
    sys.path.insert(0, str(source / "Zielon+INSTA-pytorch"))
    utils = importlib.import_module("insta.utils")
    psnr_meter, lpips_meter = utils.PSNRMeter(), utils.LPIPSMeter(net="alex", device=torch.device("cpu"))

    def load(path: Path) -> torch.Tensor:  # insta/provider.py, NeRFDataset.__init__ (downscale 1)
        image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        if image.shape[-1] == 3:
            image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
        else:
            image = cv2.cvtColor(image, cv2.COLOR_BGRA2RGBA)
        image = image.astype(np.float32) / 255
        return torch.from_numpy(image)[None]

    def eval_step(images: torch.Tensor, prediction: torch.Tensor):
        b, h, w, _ = images.shape
        model = types.SimpleNamespace(render=lambda *args, **kwargs: {"image": prediction.reshape(b, h * w, 3),
                                                                      "depth": torch.zeros(b, h * w)})
        trainer = types.SimpleNamespace(opt=types.SimpleNamespace(color_space="srgb"), model=model,
                                        criterion=torch.nn.MSELoss(reduction="none"))
        return utils.Trainer.eval_step(trainer, {"rays_o": None, "rays_d": None, "images": images})

    rows = []
    for i in range(case.frames):
        write_png(work / "gt" / f"{i:05d}.png", inputs.gt[i])
        write_png(work / "pred" / f"{i:05d}.png", inputs.pred[i])
        pred_images = load(work / "pred" / f"{i:05d}.png")
        _, _, prediction, _ = eval_step(pred_images, pred_images[..., :3])  # on white, as a render is
        preds, _, truths, _ = eval_step(load(work / "gt" / f"{i:05d}.png"), prediction)
        psnr_meter.clear()
        lpips_meter.clear()
        psnr_meter.update(preds, truths)
        lpips_meter.update(preds, truths)
        rows.append({"frame": i, "psnr": psnr_meter.measure(), "lpips": lpips_meter.measure()})
    return rows


def run_nerface(source: Path, case: Case, inputs, work: Path, old_skimage: Path) -> list[dict]:
    import lpips

    old_skimage_measure(old_skimage)
    script = load_module(source / "gafniguy+4D-Facial-Avatars/nerface_code/nerf-pytorch/nerf/metrics.py",
                         "nerface_metrics")
    instances = []
    original_init, original_update = script.ScalarMetric.__init__, script.ScalarMetric.update

    def init(self):
        original_init(self)
        self.recorded = []
        instances.append(self)

    def update(self, x):
        self.recorded.append(x)
        original_update(self, x)

    script.ScalarMetric.__init__, script.ScalarMetric.update = init, update
    script.lpips_fn = lpips.LPIPS(net="alex")  # as its __main__ does
    gt_files = reader_composite(inputs.gt) if inputs.gt.shape[-1] == 4 else inputs.gt
    pred_files = reader_composite(inputs.pred) if inputs.pred.shape[-1] == 4 else inputs.pred
    for i in range(case.frames):
        write_png(work / "gt" / f"f_{i + 1:04d}.png", gt_files[i])
        write_png(work / "generated" / f"{i + 1:04d}.png", pred_files[i])
    os.makedirs(work / "generated" / "L2", exist_ok=True)
    script.two_folders(str(work / "gt"), str(work / "generated"))
    ssim, psnr, l1, lp = instances  # created in this order by two_folders
    return [{"frame": i, "l1": l1.recorded[i], "psnr": psnr.recorded[i], "ssim": ssim.recorded[i],
             "lpips": lp.recorded[i]} for i in range(case.frames)]


def run_nha(source: Path, case: Case, inputs, work: Path) -> list[dict]:
    import torch
    import torchvision.transforms.functional as ttf
    from PIL import Image

    stub_modules("face_alignment", "face_alignment.detection", "face_alignment.detection.sfd",
                 "face_alignment.detection.sfd.sfd_detector", "cpbd", "pytorch_lightning", "nha.models",
                 "nha.util.render")
    sys.path.insert(0, str(source / "philgras+neural-head-avatars"))
    eval_suite = importlib.import_module("nha.evaluation.eval_suite")
    general = importlib.import_module("nha.util.general")
    scores = eval_suite.Evaluator(metrics=["L1", "L2", "PSNR", "LPIPS"], device="cpu")
    ms_ssim = eval_suite.Evaluator(metrics=["MS_SSIM"], device="cpu")

    def load(frames: np.ndarray, i: int, name: str) -> torch.Tensor:
        write_png(work / name / f"image_{i:04d}.png", frames[i])
        rgba = ttf.to_tensor(Image.open(work / name / f"image_{i:04d}.png").convert("RGBA"))  # nha/data/real.py
        rgb = ((rgba[:3] - 0.5) / 0.5)[None]
        alpha = split_alpha(frames)[1]
        matte = torch.ones(1, 1, *rgb.shape[-2:]) if alpha is None else torch.from_numpy(alpha[i] / np.float32(255))[None, None]
        return general.fill_tensor_background(rgb, matte.float())

    rows = []
    for i in range(case.frames):
        gt, pred = load(inputs.gt, i, "gt"), load(inputs.pred, i, "pred")
        values = {name: float(value[0]) for name, value in scores(pred, gt).items()}
        try:
            ssim = float(ms_ssim(pred, gt)["MS_SSIM"][0])
        except AssertionError as error:
            ssim = f"error: AssertionError: {error}".replace(",", ";")
        rows.append({"frame": i, "l1": values["L1"], "l2": values["L2"], "psnr": values["PSNR"], "ssim": ssim,
                     "lpips": values["LPIPS"]})
    return rows


def child_tecogan(source: Path, work: Path, old_skimage: Path) -> None:
    """In a child process (the script replaces sys.stdout): metrics.py as __main__."""
    old_skimage_measure(old_skimage)
    cuda_on_cpu()
    stub_modules("IPython")
    repo = source / "thunil+TecoGAN"
    os.chdir(repo)
    sys.path.insert(0, str(repo))
    sys.argv = ["metrics.py", "--output", str(work / "out"), "--results", str(work / "pred"), "--targets", str(work / "gt")]
    names = runpy.run_path(str(repo / "metrics.py"), run_name="__main__")
    (work / "tof.json").write_text(json.dumps([float(v) for v in names["list_dict"]["tOF"]]))


def run_tecogan(source: Path, case: Case, inputs, work: Path, old_skimage: Path) -> list[dict]:
    for i in range(case.frames):
        write_png(work / "gt" / f"{i:04d}.png", inputs.gt[i])
        write_png(work / "pred" / f"{i:04d}.png", inputs.pred[i])
    child("tecogan", source, work, old_skimage)
    values = json.loads((work / "tof.json").read_text())
    return [{"frame": 3 + k, "tof": value} for k, value in enumerate(values)]  # pair (2 + k, 3 + k)


def child_lai(source: Path, work: Path) -> None:
    """In a child process: occlusion by utils.detect_occlusion, then evaluate_WarpError.py as __main__."""
    cuda_on_cpu()
    stub_resample2d()
    fromfile = np.fromfile
    # NumPy 2 no longer converts a 1-element array to int, which read_flo does with fromfile(count=1)
    np.fromfile = lambda *args, **kwargs: fromfile(*args, **kwargs)[0] if kwargs.get("count") == 1 else fromfile(*args, **kwargs)
    repo = source / "phoenix104104+fast_blind_video_consistency"
    sys.path.insert(0, str(repo))
    utils = importlib.import_module("utils")
    spec = json.loads((work / "spec.json").read_text())
    data = work / "data"
    for video, pair in spec["videos"].items():
        forward = np.load(work / "flows" / f"{pair}_forward.npy")
        backward = np.load(work / "flows" / f"{pair}_backward.npy")
        flow_dir = data / "test" / "fw_flow" / spec["dataset"] / video
        occlusion_dir = data / "test" / "fw_occlusion" / spec["dataset"] / video
        flow_dir.mkdir(parents=True, exist_ok=True)
        occlusion_dir.mkdir(parents=True, exist_ok=True)
        occlusion = utils.detect_occlusion(backward, forward)  # as compute_flow_occlusion.py calls it
        utils.save_flo(forward, str(flow_dir / "00000.flo"))
        utils.save_img(occlusion, str(occlusion_dir / "00000.png"))
    results = {}
    for method in ("pred", "gt"):
        sys.argv = ["evaluate_WarpError.py", "-task", "calibration", "-method", method, "-dataset", spec["dataset"],
                    "-data_dir", str(data), "-list_dir", str(work / "lists"), "-redo"]
        names = runpy.run_path(str(repo / "evaluate_WarpError.py"), run_name="__main__")
        results[method] = [float(v) for v in names["err_all"][:-1]]  # the last entry is their mean
    (work / "warp.json").write_text(json.dumps(results))


def run_lai(source: Path, case: Case, inputs, work: Path) -> list[dict]:
    import cv2

    dataset = "calibration"
    videos = {f"pair{t:02d}": t for t in range(case.frames - 1)}
    (work / "lists").mkdir(parents=True, exist_ok=True)
    (work / "lists" / f"{dataset}_test.txt").write_text("".join(f"{v}\n" for v in videos))
    (work / "flows").mkdir(parents=True, exist_ok=True)
    for video, t in videos.items():
        forward, backward = analytic_flows(case.height, case.width, t)
        np.save(work / "flows" / f"{t}_forward.npy", forward)
        np.save(work / "flows" / f"{t}_backward.npy", backward)
        for method, frames in (("pred", inputs.pred), ("gt", inputs.gt)):
            folder = work / "data" / "test" / method / "calibration" / dataset / video
            folder.mkdir(parents=True, exist_ok=True)
            for k in (0, 1):  # PNG bytes under the .jpg name the script globs: lossless, read by content
                ok, data = cv2.imencode(".png", cv2.cvtColor(frames[t + k], cv2.COLOR_RGB2BGR))
                (folder / f"{k:05d}.jpg").write_bytes(data.tobytes())
    (work / "spec.json").write_text(json.dumps({"dataset": dataset, "videos": videos}))
    child("lai", source, work)
    results = json.loads((work / "warp.json").read_text())
    return [{"frame": t + 1, "warp_error": results["pred"][k], "warp_error_gt": results["gt"][k]}
            for k, t in enumerate(videos.values())]


def child(script: str, source: Path, work: Path, old_skimage: Path | None = None) -> None:
    command = [sys.executable, __file__, "--child", script, "--sources", str(source), "--work", str(work)]
    if old_skimage is not None:
        command += ["--old-skimage", str(old_skimage)]
    subprocess.run(command, check=True, env=os.environ.copy())


# ---------------------------------------------------------------------------- the table


def versions() -> dict[str, str]:
    from importlib.metadata import version

    packages = ("numpy", "torch", "torchvision", "opencv-python-headless", "lpips", "scikit-image", "scipy",
                "pillow", "imageio", "pytorch_msssim")
    return {"python": platform.python_version(), **{name: version(name) for name in packages},
            "scikit-image (compare_ssim, compare_psnr)": "0.16.2 (see the nerface and tecogan shims)"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sources", type=Path, required=True, help="folder of <owner>+<repo> checkouts")
    parser.add_argument("--work", type=Path, required=True, help="scratch folder for the scripts' files")
    parser.add_argument("--old-skimage", type=Path, help="unpacked scikit-image 0.16.2 wheel")
    parser.add_argument("--out", type=Path, default=HERE, help="where the table goes (default: next to this file)")
    parser.add_argument("--only", help="comma-separated scripts to run (default: all)")
    parser.add_argument("--remake-inputs", action="store_true",
                        help="regenerate the inputs from the recipe and store them before running the scripts")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.sources, args.work, args.out = args.sources.resolve(), args.work.resolve(), args.out.resolve()
    args.old_skimage = args.old_skimage.resolve() if args.old_skimage else None
    if args.child == "tecogan":
        return child_tecogan(args.sources, args.work, args.old_skimage)
    if args.child == "lai":
        return child_lai(args.sources, args.work)

    trunk = args.work / "torch_home" / "hub" / "checkpoints" / "alexnet-owt-7be5be79.pth"
    from calibration_recipe import save_alexnet_trunk

    save_alexnet_trunk(trunk, with_classifier=True)
    os.environ["TORCH_HOME"] = str(args.work / "torch_home")
    os.environ.setdefault("MPLBACKEND", "Agg")
    runners = {
        "imavatar": (IMAGE_CASES, lambda c, i, w: run_imavatar(args.sources, c, i, w)),
        "pointavatar": (IMAGE_CASES, lambda c, i, w: run_pointavatar(args.sources, c, i, w)),
        "insta": (IMAGE_CASES, lambda c, i, w: run_insta(args.sources, c, i, w)),
        "nerface": (IMAGE_CASES, lambda c, i, w: run_nerface(args.sources, c, i, w, args.old_skimage)),
        "nha": (IMAGE_CASES, lambda c, i, w: run_nha(args.sources, c, i, w)),
        "tecogan": (TOF_CASES, lambda c, i, w: run_tecogan(args.sources, c, i, w, args.old_skimage)),
        "lai": (WARP_CASES, lambda c, i, w: run_lai(args.sources, c, i, w)),
    }
    chosen = args.only.split(",") if args.only else list(runners)
    if args.remake_inputs:
        for case in {case for name in chosen for case in runners[name][0]}:
            save_inputs(case.name, make_inputs(case))
    manifest_path = args.out / "manifest.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {"scripts": {}, "cases": {}}
    manifest["about"] = ("Per-frame numbers the published evaluation scripts produced on the inputs stored in "
                         "tests/calibration/inputs (made by tests/calibration_recipe.py; sha256: "
                         "calibration_recipe.Inputs.checksum of the stored arrays), made by "
                         "tests/calibration/run_scripts.py; "
                         "LPIPS: both sides load calibration_recipe.alexnet_trunk() (seed 2024) as the "
                         "torchvision AlexNet trunk, with the lpips package's own v0.1 linear heads")
    manifest["environment"] = versions()
    for name in chosen:
        cases, run = runners[name]
        rows = []
        for case in cases:
            inputs = stored_inputs(case.name)
            manifest["cases"][case.name] = {"recipe": {k: v for k, v in vars(case).items() if k != "name"},
                                            "file": f"inputs/{case.name}.npz", "sha256": inputs.checksum()}
            work = args.work / name / case.name
            for row in run(case, inputs, work):
                rows.append({"case": case.name, **{k: (v if isinstance(v, str) else repr(float(v))) for k, v in row.items()
                                                   if k != "frame"}, "frame": int(row["frame"])})
            print(name, case.name, rows[-1], flush=True)
        columns = ["case", "frame", *[k for k in rows[0] if k not in ("case", "frame")]]
        lines = [",".join(columns)] + [",".join(str(row[c]) for c in columns) for row in rows]
        (args.out / f"{name}.csv").write_text("\n".join(lines) + "\n")
        manifest["scripts"][name] = {**SCRIPTS[name], "shims": SHIMS[name], "table": f"{name}.csv"}
    manifest["cases"] = dict(sorted(manifest["cases"].items(), key=lambda item: list(CASES).index(item[0])))
    manifest_path.write_text(json.dumps(manifest, indent=1) + "\n")


if __name__ == "__main__":
    main()
