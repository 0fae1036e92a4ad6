"""Training of the reference pipeline (tiny config on CPU): data layout, loss goes down on a fixed
batch, exact resume, LCM distillation step, emotion labelling, `cabench train` errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from reference_helpers import make_sequence

from metrics.errors import InputError
from reference.data import load_dataset, load_sequence
from reference.training import StageModel, TrainOptions, make_batch, step_generator, train


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return make_sequence(tmp_path_factory.mktemp("data") / "seq", frames=6)


def test_reads_the_sequence_layout(dataset, tmp_path):
    data = load_sequence(dataset, "train")
    assert data.image.shape == (4, 64, 64, 3) and data.image.dtype == np.uint8
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
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=2e-3)

    def fixed_loss():
        return model(batch, step_generator(0, 0))

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


def test_consistency_distillation_step_trains_only_the_student(dataset):
    from reference.config import build_components
    from reference.lcm import ConsistencyDistillation, boundary_scalings
    from reference.pipeline import ConsistentAvatarPipeline

    c_skip, c_out = boundary_scalings(torch.tensor([0, 999]))
    assert abs(float(c_skip[0]) - 1) < 1e-6 and float(c_out[0]) == 0  # f(x, 0) = x
    pipe = ConsistentAvatarPipeline(**build_components("tiny", seed=0))
    data = load_sequence(dataset, "train")
    emotions = pipe.embed_emotions(["neutral"] * len(data)).float()
    model = ConsistencyDistillation(pipe)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all(n.startswith("student.") for n in trainable)
    controlnet_before = {k: v.clone() for k, v in pipe.controlnet.state_dict().items()}
    target_before = next(model.target.parameters()).clone()
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    loss = model(make_batch(data, np.arange(2), emotions, "cpu"), step_generator(0, 0))
    assert torch.isfinite(loss) and loss.item() > 0
    loss.backward()
    optimizer.step()
    model.update_target()
    assert not torch.equal(next(model.target.parameters()), target_before)
    assert all(torch.equal(v, pipe.controlnet.state_dict()[k]) for k, v in controlnet_before.items())


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
