"""A sequence's audio track as the metrics see it: mono samples, their rate, and their alignment to the frames.

Convention: ``samples`` are mono int16 PCM (what syncnet_python's ``ffmpeg -ac 1 -acodec pcm_s16le``
gives, and what its MFCC is computed on); ``rate`` in Hz; ``fps`` the frame rate of the frames the
track belongs to; ``offset_s`` the time of the first sample relative to the first frame (positive:
the audio starts after frame 0). :meth:`Audio.for_frames` gives the samples that cover frames
``[start, stop)`` at a given rate, zero-filled where the track does not reach, so a metric never
has to know where the track came from. ``source`` names the file, for error messages and records.

This type lives in ``metrics`` (the bottom layer) so that metrics can take audio without importing
the dataset readers; reading and checking files is :mod:`benchmark.datasets.audio`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from metrics.errors import InputError


@dataclass(frozen=True)
class Audio:
    """Mono int16 samples at ``rate`` Hz aligned to frames at ``fps`` (see the module docstring)."""

    samples: np.ndarray
    rate: int
    fps: float
    offset_s: float = 0.0
    source: str = "audio"

    def __post_init__(self) -> None:
        if self.samples.ndim != 1 or self.samples.dtype != np.int16:
            raise InputError(f"{self.source}: audio samples must be mono int16, got {self.samples.dtype} "
                             f"of shape {self.samples.shape}")
        if self.rate <= 0 or not self.fps or self.fps <= 0:
            raise InputError(f"{self.source}: audio rate {self.rate} Hz / frame rate {self.fps} must be positive")

    @property
    def seconds(self) -> float:
        return len(self.samples) / self.rate

    def digest(self) -> str:
        """SHA-256 of the samples, rate and alignment (what a stored result depends on)."""
        h = hashlib.sha256(self.samples.tobytes())
        h.update(f"{self.rate}/{self.fps!r}/{self.offset_s!r}".encode())
        return h.hexdigest()

    def resampled(self, rate: int) -> Audio:
        """The track at ``rate`` Hz (polyphase, scipy.signal.resample_poly; itself when the rate is already ``rate``)."""
        if rate == self.rate:
            return self
        from math import gcd

        from scipy.signal import resample_poly

        g = gcd(int(rate), int(self.rate))
        y = resample_poly(self.samples.astype(np.float64), int(rate) // g, int(self.rate) // g)
        samples = np.clip(np.round(y), -32768, 32767).astype(np.int16)
        return Audio(samples, int(rate), self.fps, self.offset_s, self.source)

    def for_frames(self, start: int, stop: int) -> np.ndarray:
        """The int16 samples covering frames ``[start, stop)`` (0-based positions), zero-filled
        where the track starts late or ends early."""
        per_frame = self.rate / self.fps
        first = int(round(start * per_frame - self.offset_s * self.rate))
        count = int(round((stop - start) * per_frame))
        out = np.zeros(count, dtype=np.int16)
        lo, hi = max(first, 0), min(first + count, len(self.samples))
        if hi > lo:
            out[lo - first:hi - first] = self.samples[lo:hi]
        return out

    def aligned(self, frames: int) -> Audio:
        """The track cut (or zero-padded) to exactly cover ``frames`` frames from frame 0, offset 0."""
        return Audio(self.for_frames(0, frames), self.rate, self.fps, 0.0, self.source)
