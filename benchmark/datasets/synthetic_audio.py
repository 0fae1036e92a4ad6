"""A speech-like audio track for a synthetic sequence, loud where its mouth is open.

The synthetic face has no phonemes, so the track is what lip-sync metrics can still hold it to:
its loudness and brightness follow the mouth opening (``jaw_open``, 0..1) frame by frame. It is a
voiced source (harmonics of a fundamental near 130 Hz with a slow vibrato) whose amplitude is the
jaw opening linearly interpolated at the sample times (frame ``i`` at ``i / fps`` seconds) and whose
upper harmonics grow with the opening (an open mouth sounds brighter), plus a quiet noise floor.
Every random choice comes from ``numpy.random.default_rng([seed, 2])``, apart from the streams the
frames use, so adding audio changes no frame.

``shift_frames`` delays the track by that many frames (negative: advances it), zero-filled, the
same length: the same speech out of sync with the mouth, for tests of lip-sync metrics.
"""

from __future__ import annotations

import numpy as np

AUDIO_RATE = 16000  # Hz: syncnet_python's rate
AUDIO_NAME = "audio.wav"
SHIFTED_NAME = "audio_shifted.wav"
F0_HZ = 130.0
HARMONICS = 12
PEAK = 0.6  # of int16 full scale


def speech_track(jaw_open: np.ndarray, fps: float, seed: int = 0, rate: int = AUDIO_RATE,
                 shift_frames: int = 0) -> np.ndarray:
    """Mono int16 samples covering ``len(jaw_open)`` frames (see the module docstring)."""
    jaw = np.clip(np.asarray(jaw_open, dtype=np.float64), 0.0, 1.0)
    rng = np.random.default_rng([seed, 2])
    count = int(round(len(jaw) * rate / fps))
    t = np.arange(count) / rate
    opening = np.interp(t, np.arange(len(jaw)) / fps, jaw)
    f0 = F0_HZ * (1.0 + 0.03 * np.sin(2 * np.pi * rng.uniform(3.0, 6.0) * t + rng.uniform(0, 2 * np.pi)))
    phase = 2 * np.pi * np.cumsum(f0) / rate
    voice = np.zeros(count)
    for k in range(1, HARMONICS + 1):
        # brightness: harmonic k's weight falls off more slowly the wider the mouth is open
        weight = (1.0 / k) * np.exp(-(k - 1) * (1.2 - opening))
        voice += weight * np.sin(k * phase + rng.uniform(0, 2 * np.pi))
    voice *= opening / np.max(np.abs(voice) + 1e-12)
    signal = voice + 0.01 * rng.standard_normal(count)
    if shift_frames:
        step = int(round(abs(shift_frames) * rate / fps))
        shifted = np.zeros_like(signal)
        if shift_frames > 0:
            shifted[step:] = signal[: count - step]
        else:
            shifted[: count - step] = signal[step:]
        signal = shifted
    scale = PEAK * 32767 / max(np.max(np.abs(signal)), 1e-12)
    return np.clip(np.round(signal * scale), -32768, 32767).astype(np.int16)
