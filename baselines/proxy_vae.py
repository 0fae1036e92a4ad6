"""The stage-1 proxy through the reference checkpoint's VAE (``reference.autoencode``): the floor a
latent model must beat.

A latent diffusion model's frames pass through its autoencoder, so even a model that kept its
input's latent exactly would score the proxy's VAE round trip, not the proxy. This row says where
that floor lies for the checkpoint (``checkpoint``, a pipeline folder or ``"tiny"``); a
ConsistentAvatar row below it moved the latents away from the truth. It is a reference line, not a
competitor (role ``sanity``: never marked best). The stage-1 RGB is read as the ConsistentAvatar
adapter reads it (INSTA's renders, or a synthetic sequence's own proxy). With ``vae = false`` the row
is the stage-1 RGB itself, on any split (the ``insta`` adapter serves INSTA's test renders only; the
demo scores the proxy on the training frames this way).
"""

from __future__ import annotations

import time

import numpy as np

from baselines.base import Adapter, MethodOutput
from baselines.insta import INSTA
from benchmark.datasets.base import Sequence
from benchmark.io import ArrayFrames
from benchmark.stamps import text_stamp
from metrics.device import check_device
from metrics.errors import CabenchError

ROW = "INSTA (stage-1 proxy) -> VAE"


class ProxyThroughVAE(Adapter):
    key, row = "proxy_vae", ROW
    role = "sanity"
    path_settings = ("checkpoint", "stage1_rgb")

    def __init__(self, checkpoint: str = "tiny", device: str = "auto", stage1_rgb: str | None = None,
                 vae: bool = True, name: str | None = None, split: str = "test"):
        super().__init__(name=name, split=split)
        self.checkpoint, self.vae = checkpoint, bool(vae)
        self.device = check_device(device, "adapter 'proxy_vae': setting device")
        self.stage1_source = INSTA(rgb_path=stage1_rgb)

    def fingerprint(self, sequence: Sequence) -> str:
        ids = self.frame_ids(sequence)
        rgb = self.stage1_source.stage1(sequence, ids)[0]
        return text_stamp(self.input_stamp(sequence, files=[self.checkpoint] if self.vae else []), rgb.content_key(ids))

    def outputs(self, sequence: Sequence) -> MethodOutput:
        ids = self.frame_ids(sequence)
        rgb = self.stage1_source.stage1(sequence, ids)[0].read(ids).rgb
        if not self.vae:
            frames = ArrayFrames(np.asarray(rgb), frame_ids=ids, name=f"{self.name}:{sequence.name}", fps=sequence.fps)
            return MethodOutput(frames, {"through": "nothing"})
        try:
            from reference.autoencode import autoencode
        except ImportError:
            raise CabenchError("adapter 'proxy_vae': the reference pipeline is not available in this installation") from None
        start = time.perf_counter()
        out = np.asarray(autoencode(self.checkpoint, rgb, device=self.device))
        elapsed = time.perf_counter() - start
        frames = ArrayFrames(out, frame_ids=ids, name=f"{self.name}:{sequence.name}", fps=sequence.fps)
        return MethodOutput(frames, {"checkpoint": str(self.checkpoint), "through": "vae"},
                            seconds_per_frame=elapsed / len(ids))
