"""Training of the reference pipeline (tiny config on CPU): data layout, loss goes down on a fixed
batch, exact resume, LCM distillation step, emotion labelling, `cabench train` errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from reference_helpers import make_sequence

from metrics.errors import CabenchError, InputError
from reference.data import load_dataset, load_sequence
from reference.steps import Shard, StepDraw
from reference.training import StageModel, TrainOptions, make_batch, train
from reference.tsd import tsd


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return make_sequence(tmp_path_factory.mktemp("data") / "seq", frames=6, size=32)


def test_reads_the_sequence_layout(dataset, tmp_path):
    data = load_sequence(dataset, "train")
    assert data.image.shape == (4, 32, 32, 3) and data.image.dtype == np.uint8
    assert data.pose.shape == (4, 6) and data.expression.shape == (4, 100) and not data.pose_missing
    # RGBA ground truth is composited on white: corners (alpha 0) are white
    assert (data.image[:, 0, 0] == 255).all()
    assert len(load_dataset(dataset.parent, "test")) == 2
    no_pose = make_sequence(tmp_path / "np", frames=3, with_pose=False)
    data = load_sequence(no_pose, "all")
    assert data.pose_missing and not data.pose.any()
    (no_pose / "flame" / "exp" / "00001.txt").unlink()
    with pytest.raises(InputError, match="00001.txt"):
        load_sequence(no_pose, "all")
    with pytest.raises(InputError, match="does not exist"):
        load_dataset(tmp_path / "nothing")


@pytest.mark.parametrize("stage", ["stage2", "stage3"])
def test_a_few_steps_on_a_fixed_batch_lower_the_loss(dataset, stage):
    from reference_helpers import tiny_pipeline

    pipe = tiny_pipeline()
    data = load_sequence(dataset, "train")
    emotions = pipe.embed_emotions(["neutral"] * len(data)).float()
    model = StageModel(pipe, stage, train_unet_base=True)
    saved = {k: v.clone() for k, v in model.state_dict().items()}
    batch = make_batch(data, np.arange(4), emotions, "cpu")
    batch["guide"] = tsd(batch["image"])
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=2e-3)

    def fixed_loss():
        return model(batch, StepDraw(0, 0, Shard(4)))

    with torch.no_grad():
        before = fixed_loss().item()
    for _ in range(8):
        loss = fixed_loss()
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    with torch.no_grad():
        after = fixed_loss().item()
    model.load_state_dict(saved)  # leave the shared pipeline as it was
    assert after < 0.8 * before, (before, after)


def test_resume_continues_identically(dataset, tmp_path):
    data = load_sequence(dataset, "train")
    common = dict(stage="stage2", batch_size=2, learning_rate=1e-3, progress=False)
    # the tiny VAE must exist first; both runs share the same starting pipeline
    train(TrainOptions(stage="vae", steps=1, batch_size=1, progress=False), data, tmp_path / "start")
    import shutil

    shutil.copytree(tmp_path / "start", tmp_path / "a")
    shutil.copytree(tmp_path / "start", tmp_path / "b")
    straight = train(TrainOptions(steps=4, **common), data, tmp_path / "a")
    first = train(TrainOptions(steps=2, **common), data, tmp_path / "b")
    # another stage in between must survive the resume (the resumable state holds only stage 2's parts)
    train(TrainOptions(stage="stage3", steps=1, batch_size=1, progress=False), data, tmp_path / "b")
    from safetensors.torch import load_file

    unet_path = tmp_path / "b" / "unet" / "diffusion_pytorch_model.safetensors"
    after_stage3 = load_file(unet_path)
    second = train(TrainOptions(steps=4, resume=True, **common), data, tmp_path / "b")
    assert first + second == straight
    assert all(torch.equal(v, load_file(unet_path)[k]) for k, v in after_stage3.items())

    a = load_file(tmp_path / "a" / "tsdm_unet" / "diffusion_pytorch_model.safetensors")
    b = load_file(tmp_path / "b" / "tsdm_unet" / "diffusion_pytorch_model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert (tmp_path / "b" / "train_log_stage2.csv").read_text().count("\n") == 5


def test_mixed_precision_and_gradient_checkpointing_options(dataset, tmp_path):
    data = load_sequence(dataset, "train")
    losses = train(TrainOptions(stage="stage3", steps=2, batch_size=2, mixed_precision="bf16",
                                gradient_checkpointing=True, progress=False), data, tmp_path / "mp")
    assert len(losses) == 2 and all(np.isfinite(losses))
    from reference.pipeline import ConsistentAvatarPipeline

    assert (tmp_path / "mp" / "train_state" / "stage3" / "step.json").is_file()
    ConsistentAvatarPipeline.from_pretrained(tmp_path / "mp")  # the saved pipeline loads


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    """A 32 px sequence and a pipeline folder with its VAE and TSDM (one step each)."""
    root = tmp_path_factory.mktemp("small")
    data = load_sequence(make_sequence(root / "seq", frames=6, size=32), "train")
    for stage in ("vae", "stage2"):
        train(TrainOptions(stage=stage, steps=1, batch_size=2, progress=False), data, root / "pipe")
    return data, root / "pipe"


def copy_of(folder, to):
    import shutil

    return shutil.copytree(folder, to)


def test_a_resumed_variant_writes_the_files_of_an_uninterrupted_one(small, tmp_path):
    """An ablation's stage 3, stopped and resumed, leaves byte-identical files in ``ablations/<name>/``,
    configs included: the resumed run loads the variant's parts from that folder, and where it loaded them
    from is not part of what it trained."""
    data, start = small
    a, b = copy_of(start, tmp_path / "a"), copy_of(start, tmp_path / "b")
    common = dict(stage="stage3", ablation="wo_emotion", batch_size=2, progress=False)
    train(TrainOptions(steps=2, **common), data, a)
    train(TrainOptions(steps=1, **common), data, b)
    train(TrainOptions(steps=2, resume=True, **common), data, b)
    variant_a, variant_b = a / "ablations" / "wo_emotion", b / "ablations" / "wo_emotion"
    files = sorted(p.relative_to(variant_a) for p in variant_a.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(variant_b) for p in variant_b.rglob("*") if p.is_file())
    assert any(f.name == "config.json" for f in files)
    for name in files:
        assert (variant_a / name).read_bytes() == (variant_b / name).read_bytes(), name


def test_stage3_trains_on_cached_tsdm_outputs_and_resumes_exactly(small, tmp_path):
    from safetensors.torch import load_file

    from reference.pipeline import ConsistentAvatarPipeline
    from reference.tsd_cache import CACHE_FILE

    data, start = small
    a, b = copy_of(start, tmp_path / "a"), copy_of(start, tmp_path / "b")
    common = dict(stage="stage3", batch_size=2, progress=False)
    straight = train(TrainOptions(steps=3, **common), data, a)
    first = train(TrainOptions(steps=1, **common), data, b)
    cache = b / "train_state" / CACHE_FILE
    made = cache.stat().st_mtime_ns
    second = train(TrainOptions(steps=3, resume=True, **common), data, b)
    assert first + second == straight and cache.stat().st_mtime_ns == made  # reused, not resampled
    for part in ("unet", "controlnet", "fcsd_encoder"):
        x = load_file(a / part / "diffusion_pytorch_model.safetensors")
        y = load_file(b / part / "diffusion_pytorch_model.safetensors")
        assert all(torch.equal(x[k], y[k]) for k in x), part
    assert (b / "train_log_stage3.csv").read_text() == (a / "train_log_stage3.csv").read_text()

    # the cached TSD' of frame j is what the pipeline feeds the FCSD at inference (LCM, 10 steps, seed j)
    aligned = load_file(cache)["aligned_tsd"]
    pipe = ConsistentAvatarPipeline.from_pretrained(b)
    j = 2
    rgb, normal = (torch.from_numpy(x[j:j + 1]).permute(0, 3, 1, 2).float() / 255 for x in (data.rgb, data.normal))
    _, guide, *_ = pipe.prepare_conditions(rgb, normal, torch.from_numpy(data.pose[j:j + 1]),
                                           torch.from_numpy(data.expression[j:j + 1]), tsdm_steps=10,
                                           generator=[torch.Generator().manual_seed(j)], scheduler="lcm")
    torch.testing.assert_close(aligned[j:j + 1], guide, atol=1e-5, rtol=0)
    assert aligned.shape == (len(data), 3, 32, 32)

    # new TSDM weights make the cache stale: a fresh stage 3 resamples it, a resumed one refuses
    train(TrainOptions(stage="stage2", steps=2, batch_size=2, progress=False), data, b)
    with pytest.raises(CabenchError, match="other TSDM weights"):
        train(TrainOptions(steps=4, resume=True, **common), data, b)
    train(TrainOptions(steps=1, **common), data, b)
    assert not torch.equal(load_file(cache)["aligned_tsd"], aligned)


def test_stage3_on_the_ground_truth_tsd(small, tmp_path):
    from reference.training import guide_tsd, make_batch
    from reference.tsd_cache import CACHE_FILE

    data, start = small
    out = copy_of(start, tmp_path / "gt")
    losses = train(TrainOptions(stage="stage3", stage3_tsd="ground-truth", steps=1, batch_size=2, progress=False),
                   data, out)
    assert len(losses) == 1 and not (out / "train_state" / CACHE_FILE).exists()
    batch = make_batch(data, np.arange(2), torch.zeros(len(data), 1), "cpu")
    assert torch.equal(guide_tsd("ground-truth", batch), tsd(batch["image"]))
    assert torch.equal(guide_tsd("unaligned", batch), tsd(batch["rgb"]))


def test_lcm_distillation_trains_a_lora_that_lcm_sampling_uses(small, tmp_path):
    from reference_helpers import random_inputs

    from reference.lcm import (
        LORA_WEIGHTS,
        ConsistencyDistillation,
        add_lcm_lora,
        boundary_scalings,
        has_lcm_lora,
    )
    from reference.pipeline import ConsistentAvatarPipeline

    c_skip, c_out = boundary_scalings(torch.tensor([0, 999]))
    assert abs(float(c_skip[0]) - 1) < 1e-6 and float(c_out[0]) == 0  # f(x, 0) = x
    data, start = small
    out = copy_of(start, tmp_path / "lcm")
    train(TrainOptions(stage="stage3", steps=2, batch_size=2, progress=False), data, out)

    # one step by hand: only the LoRA learns; the LoRA disabled is the undistilled UNet exactly
    pipe = ConsistentAvatarPipeline.from_pretrained(out)
    base = {k: v.clone() for k, v in pipe.unet.state_dict().items()}
    x, t, ctx = torch.randn(1, 4, 8, 8), torch.tensor([499]), pipe.text_context(1)
    tokens = {"condition_tokens": torch.randn(1, 4, 32)}
    before = pipe.unet(x, t, ctx, cross_attention_kwargs=tokens).sample
    add_lcm_lora(pipe.unet, rank=4, seed=0)
    model = ConsistencyDistillation(pipe, "fcsd")
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)
    batch = make_batch(data, np.arange(2), pipe.embed_emotions(["neutral"] * len(data)).float(), "cpu")
    batch["guide"] = tsd(batch["image"])
    loss = model(batch, StepDraw(0, 0, Shard(2)))
    loss.backward()
    torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-2).step()
    assert torch.isfinite(loss)
    pipe.unet.disable_adapters()
    assert torch.equal(pipe.unet(x, t, ctx, cross_attention_kwargs=tokens).sample, before)
    assert all(torch.equal(v, base[k]) for k, v in pipe.unet.state_dict().items() if k in base)

    # through `train`: a diffusers-format LoRA file; LCM sampling uses it, any other sampler does not
    train(TrainOptions(stage="distill-lcm", steps=2, batch_size=2, progress=False, lora_rank=4), data, out)
    from safetensors.torch import load_file

    keys = list(load_file(out / "unet_lcm_lora" / LORA_WEIGHTS))
    assert keys and all(k.startswith("unet.") and (".lora_A." in k or ".lora_B." in k) for k in keys)
    distilled = ConsistentAvatarPipeline.from_pretrained(out)
    plain = ConsistentAvatarPipeline.from_pretrained(out, lcm_lora=False)
    assert has_lcm_lora(distilled.unet) and not has_lcm_lora(plain.unet) and not has_lcm_lora(distilled.tsdm_unet)
    inputs = random_inputs(1, 32)

    def frames(pipe, scheduler, **kwargs):
        pipe.set_scheduler(scheduler)
        return pipe(*inputs, num_inference_steps=2, generator=torch.Generator().manual_seed(0), **kwargs).images

    assert not torch.equal(frames(distilled, "lcm"), frames(plain, "lcm"))
    assert torch.equal(frames(distilled, "ddim"), frames(plain, "ddim"))
    assert torch.equal(frames(distilled, "lcm", ablation="wo_lcm"), frames(plain, "ddim"))

    # retraining the FCSD drops the LoRA distilled from the weights it replaces
    train(TrainOptions(stage="stage3", steps=1, batch_size=2, progress=False), data, out)
    assert not (out / "unet_lcm_lora").exists()


def test_the_loss_log_is_flushed_line_by_line_and_trimmed_on_resume(tmp_path):
    from reference.training import LossLog

    path = tmp_path / "log.csv"
    log = LossLog(path, 0, enabled=True)
    for step in range(4):
        log.write(step, 0.5 + step)
    assert path.read_text().splitlines() == ["step,loss", "0,0.500000", "1,1.500000", "2,2.500000", "3,3.500000"]
    log.close()
    LossLog(path, 2, enabled=True).close()  # resumed at step 2: steps 2 and 3 are redone
    assert path.read_text().splitlines() == ["step,loss", "0,0.500000", "1,1.500000"]
    LossLog(tmp_path / "other.csv", 0, enabled=False).write(0, 1.0)  # not the main process: no file
    assert not (tmp_path / "other.csv").exists()


def test_the_device_is_accelerates_unless_given():
    from reference.training import make_accelerator

    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert make_accelerator().device.type == expected
    assert make_accelerator(device="cpu").device.type == "cpu"
    if not torch.cuda.is_available():
        with pytest.raises(CabenchError, match="no CUDA device"):
            make_accelerator(device="cuda")
    with pytest.raises(CabenchError, match="choose cpu or cuda"):
        make_accelerator(device="tpu")


def test_emotion_database_labels_by_cosine_similarity(tmp_path):
    from reference.emotion import ExpressionDatabase

    rng = np.random.default_rng(0)
    clips = {"happy": [rng.normal(size=(5, 100))], "angry": [rng.normal(size=(3, 100)), rng.normal(size=(2, 100))]}
    for label, arrays in clips.items():
        (tmp_path / label).mkdir()
        for i, arr in enumerate(arrays):
            np.save(tmp_path / label / f"clip{i}.npy", arr)
    db = ExpressionDatabase.from_folder(tmp_path)
    query = rng.normal(size=(7, 100))
    rows = np.concatenate([clips["angry"][0], clips["angry"][1], clips["happy"][0]])
    row_labels = ["angry"] * 5 + ["happy"] * 5
    cos = (query / np.linalg.norm(query, axis=1, keepdims=True)) @ (rows / np.linalg.norm(rows, axis=1, keepdims=True)).T
    assert db.label(query, chunk=3) == [row_labels[i] for i in cos.argmax(1)]
    assert db.label(clips["happy"][0][:2] * 3.0) == ["happy", "happy"]  # scale-invariant
    with pytest.raises(InputError, match="expressions must be"):
        db.label(np.zeros((2, 5)))
    with pytest.raises(InputError, match="holds no"):
        ExpressionDatabase.from_folder(tmp_path / "happy")


def test_emotion_embeddings_are_computed_per_label():
    from reference_helpers import tiny_pipeline

    pipe = tiny_pipeline()
    emb = pipe.embed_emotions(["happy", "sad", "happy"])
    assert emb.shape == (3, 32) and torch.equal(emb[0], emb[2]) and not torch.equal(emb[0], emb[1])
    torch.testing.assert_close(emb[1], pipe.embed_emotions(["sad"])[0])


def test_cli_train_bad_inputs(tmp_path, capsys):
    from benchmark.cli import main

    assert main(["train", "stage2", "--data", str(tmp_path / "missing"), "--output", str(tmp_path / "o")]) == 2
    assert "missing" in capsys.readouterr().err
    seq = make_sequence(tmp_path / "seq", frames=3)
    assert main(["train", "vae", "--config", "sd15", "--data", str(seq), "--output", str(tmp_path / "o")]) == 2
    assert "only for the tiny config" in capsys.readouterr().err
    assert main(["train", "stage2", "--config", "huge", "--data", str(seq), "--output", str(tmp_path / "o")]) == 2
    assert "unknown config" in capsys.readouterr().err
    assert main(["train", "stage2", "--ablation", "wo_normal", "--data", str(seq), "--output", str(tmp_path / "o")]) == 2
    assert "--ablation applies to stage3" in capsys.readouterr().err
    assert main(["train", "stage3", "--ablation", "wo_stage2", "--stage3-tsd", "ground-truth", "--data", str(seq),
                 "--output", str(tmp_path / "o")]) == 2
    assert "drop --stage3-tsd" in capsys.readouterr().err
    assert main(["train", "stage3", "--gradient-accumulation-steps", "0", "--data", str(seq),
                 "--output", str(tmp_path / "o")]) == 2
    assert "--gradient-accumulation-steps must be at least 1" in capsys.readouterr().err


def test_stage2_in_a_folder_without_a_trained_vae_says_so(tmp_path, capsys):
    from benchmark.cli import main

    seq = make_sequence(tmp_path / "seq", frames=3)
    common = ["--data", str(seq), "--steps", "1", "--size", "32", "--quiet"]
    assert main(["train", "stage2", *common, "--output", str(tmp_path / "bare")]) == 0
    warning = [line for line in capsys.readouterr().err.splitlines() if line.startswith("cabench: warning:")]
    assert len(warning) == 1 and "no trained VAE" in warning[0] and "cabench train vae" in warning[0]
    assert main(["train", "vae", *common, "--output", str(tmp_path / "made")]) == 0
    assert main(["train", "stage2", *common, "--output", str(tmp_path / "made")]) == 0
    assert "cabench: warning:" not in capsys.readouterr().err


def test_min_snr_weighting_weighs_each_sample_by_min_snr_gamma_over_snr():
    """eps_loss with ``snr_gamma``: each sample's MSE times min(SNR, gamma) / SNR, SNR from the scaled-linear
    betas computed here with numpy (Hang et al. 2023); without it, the plain MSE; bad values are refused."""
    from reference.config import tiny_scheduler
    from reference.training import TrainOptions, eps_loss, stage_target

    betas = np.linspace(0.00085 ** 0.5, 0.012 ** 0.5, 1000) ** 2
    alphas = np.cumprod(1 - betas)
    g = torch.Generator().manual_seed(0)
    eps, noise = torch.randn(4, 4, 8, 8, generator=g), torch.randn(4, 4, 8, 8, generator=g)
    t = torch.tensor([0, 100, 500, 999])
    per_sample = ((eps - noise) ** 2).flatten(1).mean(1).double().numpy()
    snr = alphas[t.numpy()] / (1 - alphas[t.numpy()])
    expected = float(np.mean(np.minimum(snr, 5.0) / snr * per_sample))
    scheduler = tiny_scheduler()
    assert float(eps_loss(eps, noise, t, scheduler, 5.0)) == pytest.approx(expected, rel=1e-6)
    assert float(eps_loss(eps, noise, t, scheduler)) == pytest.approx(float(per_sample.mean()), rel=1e-6)
    assert snr[0] > 5 > snr[-1]  # the weighting lowers the low-noise end and keeps the high-noise end
    for stage, gamma in (("stage3", 0.0), ("vae", 5.0), ("distill-lcm", 5.0)):
        with pytest.raises(CabenchError, match="--snr-gamma"):
            stage_target(TrainOptions(stage=stage, snr_gamma=gamma), Path("out"))


def test_the_consistency_target_follows_the_teachers_ode_on_a_point_mass():
    """Data that is one point c: the exact noise prediction is eps = (x - sqrt(a_t) c) / sqrt(1 - a_t), the
    probability-flow ODE keeps that noise constant, so the teacher's DDIM step lands exactly on the
    trajectory at t - 20; every x0 prediction is c, the consistency function there is c_skip x + c_out c,
    and at the boundary t = 0 it is x itself (c_skip = 1, c_out = 0)."""
    from reference.config import tiny_scheduler
    from reference.lcm import SKIP, boundary_scalings, consistency_function, ddim_step

    alphas = tiny_scheduler().alphas_cumprod.double()
    g = torch.Generator().manual_seed(0)
    c, z = torch.randn(1, 4, 8, 8, generator=g).double(), torch.randn(3, 4, 8, 8, generator=g).double()
    t = torch.tensor([19, 499, 999])
    t_prev = (t - SKIP).clamp_min(0)
    a, a_prev = alphas[t].view(-1, 1, 1, 1), alphas[t_prev].view(-1, 1, 1, 1)
    x_t = a.sqrt() * c + (1 - a).sqrt() * z

    def exact_eps(x, alpha):
        return (x - alpha.sqrt() * c) / (1 - alpha).sqrt()

    x_prev = ddim_step(x_t, exact_eps(x_t, a), a, a_prev)
    torch.testing.assert_close(x_prev, a_prev.sqrt() * c + (1 - a_prev).sqrt() * z, rtol=0, atol=1e-12)
    c_skip, c_out = boundary_scalings(t_prev)
    target = consistency_function(x_prev, exact_eps(x_prev, a_prev), t_prev, a_prev)
    torch.testing.assert_close(target, c_skip * x_prev + c_out * c, rtol=0, atol=1e-12)
    torch.testing.assert_close(target[0], x_prev[0], rtol=0, atol=0)  # t_prev = 0: the boundary condition
    student = consistency_function(x_t, exact_eps(x_t, a), t, a)
    assert float((student[1:] - c).abs().max()) < 1e-4  # away from t = 0 the ideal model maps to c


def test_nearest_frame_distance_equals_a_brute_force_scipy_search():
    from scipy.spatial.distance import cdist

    from reference.data import nearest_frame_distance

    rng = np.random.default_rng(0)
    train, test = rng.normal(size=(30, 6)), rng.normal(size=(7, 6)) + 0.5
    np.testing.assert_allclose(nearest_frame_distance(test, train), cdist(test, train).min(1), rtol=1e-9, atol=1e-12)
    others = cdist(train, train) + np.diag(np.full(30, np.inf))
    np.testing.assert_allclose(nearest_frame_distance(train, train, same=True), others.min(1), rtol=1e-9, atol=1e-12)
    assert np.all(nearest_frame_distance(train, train) < 1e-6)  # without same=True each frame finds itself
    with pytest.raises(InputError, match="nearest_frame_distance"):
        nearest_frame_distance(test, train[:, :5])


def test_the_tsd_cutoff_is_recorded_in_the_folder_and_a_later_stage_cannot_change_it(small, tmp_path):
    """``--tsd-cutoff`` (e.g. the paper's band scaled to 64 px) is recorded in model_index.json and used by
    every TSD of the pipeline; a stage asking an existing folder for another cutoff is refused."""
    from reference_helpers import tiny_pipeline

    from reference.pipeline import ConsistentAvatarPipeline
    from reference.tsd import scaled_cutoff

    assert scaled_cutoff(64) == 1.25
    ConsistentAvatarPipeline(**tiny_pipeline().components, tsd_cutoff=1.25).save_pretrained(tmp_path / "p")
    pipe = ConsistentAvatarPipeline.from_pretrained(tmp_path / "p")
    images = torch.rand(2, 3, 32, 32)
    assert pipe.config.tsd_cutoff == 1.25
    assert torch.equal(pipe.tsd_of(images), tsd(images, cutoff=1.25))
    assert not torch.allclose(pipe.tsd_of(images), tsd(images))
    data, folder = small  # made with the default, the paper's 10
    with pytest.raises(CabenchError, match="tsd-cutoff 1.25"):
        train(TrainOptions(stage="stage2", steps=1, batch_size=2, progress=False, tsd_cutoff=1.25), data, folder)


def test_the_emotion_database_travels_with_the_pipeline(small, tmp_path):
    """Training with an expression database keeps it in the folder; the loaded pipeline labels frames by
    their expressions with it (no label given), and save_pretrained writes it again."""
    from reference.emotion import ExpressionDatabase
    from reference.pipeline import ConsistentAvatarPipeline

    data, folder = small
    db = tmp_path / "db"
    for label, direction in (("happy", 1), ("sad", 2)):
        (db / label).mkdir(parents=True)
        clip = np.zeros((2, 100))
        clip[:, direction] = 1
        np.save(db / label / "c.npy", clip)
    out = copy_of(folder, tmp_path / "pipe")
    train(TrainOptions(stage="stage3", steps=1, batch_size=2, progress=False, stage3_tsd="ground-truth"), data, out,
          emotion_db=db)
    pipe = ConsistentAvatarPipeline.from_pretrained(out)
    expression = np.zeros((3, 100), np.float32)
    expression[:, 1] = [1, 0, 1]
    expression[:, 2] = [0, 1, 0.5]
    assert pipe.emotion_labels(None, 3, expression) == ["happy", "sad", "happy"]
    assert pipe.emotion_labels("sad", 3, expression) == ["sad"] * 3
    pipe.save_pretrained(tmp_path / "again")
    assert ExpressionDatabase.from_folder(tmp_path / "again" / "emotion_db").label(expression) == ["happy", "sad", "happy"]
