"""Test helpers: an mp4 with an audio stream, written by PyAV (FFmpeg's encoders), from frames and samples."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np


def write_talking_video(path: Path, frames: np.ndarray, fps: int, samples: np.ndarray | None, rate: int = 16000,
                        lossless: bool = True) -> Path:
    """Write (T,H,W,3) uint8 RGB ``frames`` at ``fps`` with mono int16 ``samples`` (PCM in .mkv/.mov, AAC in .mp4).

    ``lossless``: frames coded with x264 at qp 0 in yuv444p, so that they decode close to what was written."""
    import av

    with av.open(str(path), "w") as container:
        video = container.add_stream("libx264", rate=fps)
        video.width, video.height = frames.shape[2], frames.shape[1]
        video.pix_fmt = "yuv444p" if lossless else "yuv420p"
        if lossless:
            video.options = {"qp": "0", "preset": "ultrafast"}
        audio = None
        if samples is not None:
            codec = "aac" if path.suffix == ".mp4" else "pcm_s16le"
            audio = container.add_stream(codec, rate=rate, layout="mono")
        for frame in frames:
            for packet in video.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")):
                container.mux(packet)
        for packet in video.encode():
            container.mux(packet)
        if audio is not None:
            chunk = 1024
            for start in range(0, len(samples), chunk):
                piece = np.ascontiguousarray(samples[start:start + chunk], dtype=np.int16).reshape(1, -1)
                frame = av.AudioFrame.from_ndarray(piece, format="s16", layout="mono")
                frame.sample_rate = rate
                frame.pts = start
                frame.time_base = Fraction(1, rate)
                for packet in audio.encode(frame):
                    container.mux(packet)
            for packet in audio.encode():
                container.mux(packet)
    return path
