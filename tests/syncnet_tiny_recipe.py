"""A tiny SyncNet that has learnt the synthetic talking face's lip sync: the weights behind the tests of
"shifted audio scores a worse LSE-D and an offset near the shift" (tests/test_lipsync_trained.py).

No real ``syncnet_v2.model`` can be downloaded, and random weights carry no sync signal, so this recipe
trains one, seeded and on CPU, on what ``cabench synth --audio`` writes: the synthetic face
(:func:`benchmark.datasets.synthetic.motion` and its renderer) and its speech track, whose loudness and
brightness follow the mouth opening (:mod:`benchmark.datasets.synthetic_audio`).

- Network: :class:`metrics.syncnet.SyncNet` (syncnet_python's ``S``) at 1/16 of its width with
  32-d embeddings, saved as syncnet_python's file is (``torch.save`` of the state dict), so the
  ``lse_*`` metrics load it as they load ``syncnet_v2.model`` (the width is read from the shapes).
- Inputs as the metric scores them with ``lse_crop="frame"`` (Wav2Lip's LRS scoring: the whole frame
  resized to 224x224, BGR, 0..255): 5-frame windows of the sequences of ``TRAIN_SEEDS`` and the
  0.2 s of MFCC that go with each (:func:`metrics.syncnet.mfcc`, 4 MFCC frames per video frame).
- Training: the lip stream's convolutions keep their seeded random weights, their batch-norm
  statistics taken from the training windows (so the features do not collapse), and are not trained
  (their 224x224 input is what makes training slow on CPU); the lip stream's fully connected layers
  and the whole audio stream are trained with SyncNet's contrastive loss: for each window, the distance
  to its own audio window pulled to 0, to the audio 2..15 frames away (drawn at random) and to the
  zero vector (what syncnet_python's offset search compares beyond either end) pushed beyond
  ``MARGIN``. Full batches, Adam, ``STEPS`` steps, one thread.

Run ``PYTHONPATH=. python tests/syncnet_tiny_recipe.py [OUT]`` (project venv, from the repository root) to
remake ``tests/data/syncnet_tiny.model`` (about 15 minutes of one core on a busy 2-core machine; a rerun
gave the shipped tensors bit for bit). No test retrains it (that time is far over the suite's budget);
tests/test_lipsync_trained.py checks the shipped file on a sequence of a seed it was not trained on.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
WEIGHTS = HERE / "data" / "syncnet_tiny.model"
SEED = 0
TRAIN_SEEDS = tuple(range(100, 106))
FRAMES = 60
SIZE = 96
FPS = 25.0
WIDTH = 1 / 16
FEATURES = 32
STEPS = 300
MARGIN = 2.0
LEARNING_RATE = 3e-3


def rendered_frames(seed: int, frames: int = FRAMES, size: int = SIZE) -> np.ndarray:
    """(T,S,S,3) uint8 RGB frames of the synthetic sequence ``seed``, composited on white as ``cabench synth``'s
    RGBA frames are (the pixels of ``images/*.png``, and of tests' ``frames_rgb``)."""
    from benchmark.datasets.synthetic import motion
    from benchmark.datasets.synthetic_face import face_model, render

    model = face_model(size)
    out = []
    for params in motion(frames, FPS, seed):
        rendered = render(model, params)
        alpha = (np.rint(rendered.matte * 255) / 255.0)[..., None]
        out.append(np.clip(np.rint(rendered.rgb * alpha + 255.0 * (1.0 - alpha)), 0, 255).astype(np.uint8))
    return np.stack(out)


def speech(seed: int, frames: int = FRAMES, shift: int = 0) -> np.ndarray:
    """The int16 speech track ``cabench synth --audio`` writes for sequence ``seed``."""
    from benchmark.datasets.synthetic import motion
    from benchmark.datasets.synthetic_audio import speech_track

    jaw = np.array([p.jaw_open for p in motion(frames, FPS, seed)])
    return speech_track(jaw, FPS, seed, shift_frames=shift)


def windows(seed: int):
    """(video windows (W,3,5,224,224) float32, MFCC windows (W,1,13,20) float32) of sequence ``seed``."""
    import torch

    from metrics.lipsync import whole_frame_crop
    from metrics.syncnet import MFCC_PER_FRAME, MFCC_WINDOW, WINDOW, mfcc

    crops = np.stack([whole_frame_crop(np.ascontiguousarray(f[:, :, ::-1])) for f in rendered_frames(seed)])
    video = torch.from_numpy(crops.astype(np.float32)).permute(3, 0, 1, 2)  # (3,T,224,224)
    cepstra = torch.from_numpy(mfcc(speech(seed)).astype(np.float32))
    count = FRAMES - WINDOW
    lips = torch.stack([video[:, t:t + WINDOW] for t in range(count)])
    audio = torch.stack([cepstra[:, t * MFCC_PER_FRAME:t * MFCC_PER_FRAME + MFCC_WINDOW] for t in range(count)])[:, None]
    return lips, audio


def train(path: Path = WEIGHTS, log=print) -> Path:
    """Train the tiny SyncNet (see the module docstring) and save its state dict at ``path``."""
    import torch
    from torch.nn import functional as F

    from metrics.syncnet import SyncNet

    torch.set_num_threads(1)
    torch.manual_seed(SEED)
    net = SyncNet(FEATURES, WIDTH)
    data = [windows(seed) for seed in TRAIN_SEEDS]
    convs = net.netcnnlip
    for module in convs.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            module.momentum = None  # a cumulative average over every training window
    convs.train()
    with torch.no_grad():
        for lips, _ in data:
            convs(lips)
    convs.eval().requires_grad_(False)
    with torch.no_grad():
        features = [(convs(lips).flatten(1), audio) for lips, audio in data]
    trained = [p for name, p in net.named_parameters() if not name.startswith("netcnnlip.")]
    optimiser = torch.optim.Adam(trained, lr=LEARNING_RATE)
    draw = torch.Generator().manual_seed(SEED)
    net.netfclip.train()
    net.netcnnaud.train()
    net.netfcaud.train()
    for step in range(STEPS):
        loss = torch.zeros(())
        for lip_features, audio in features:
            count = len(audio)
            lip = net.netfclip(lip_features)
            aud = net.forward_aud(audio)
            offset = torch.randint(2, 16, (count,), generator=draw) * (torch.randint(0, 2, (count,), generator=draw) * 2 - 1)
            other = (torch.arange(count) + offset).clamp(0, count - 1)
            apart = (other - torch.arange(count)).abs() >= 2
            positive = F.pairwise_distance(lip, aud)
            negative = F.pairwise_distance(lip, aud[other])
            loss = loss + (positive ** 2).mean() + (F.relu(MARGIN - negative) ** 2 * apart).mean() \
                + (F.relu(MARGIN - lip.norm(dim=1)) ** 2).mean()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        if step % 50 == 0 or step == STEPS - 1:
            log(f"step {step}: loss {float(loss.detach()):.4f}")
    net.eval()
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(net.state_dict(), path)
    return path


if __name__ == "__main__":
    sys.path.insert(0, str(HERE.parent))
    print(train(Path(sys.argv[1]) if len(sys.argv) > 1 else WEIGHTS))
