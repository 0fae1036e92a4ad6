"""Reading a sequence's audio: a video's audio stream or a ``.wav`` beside the frames, checked against the frames.

Where a sequence's audio comes from (first match):

1. an explicit file (a dataset config's ``audio = "speech.wav"``, any format FFmpeg reads);
2. the audio stream of the ground-truth video (``cabench eval --gt talk.mp4``);
3. ``audio.wav`` inside a frames folder or an INSTA / synthetic sequence folder, or ``<folder>.wav``
   beside a frames folder.

A video without an audio stream and a folder without a ``.wav`` simply have no audio (metrics that
need it are then reported missing); a file that is named or found but cannot serve is bad input,
one line naming it: unreadable or without an audio stream, empty, a sample rate below 8 kHz
(speech features need 4 kHz of band), or a length that does not cover the frames (more than
``max(2 frames, 0.1 s)`` shorter or longer than ``frames / fps``; the tolerance absorbs an AAC
encoder's priming and padding).

Decoding is PyAV's (FFmpeg's libavcodec and libswresample): samples are converted to mono int16
at the file's own rate, which is how ``ffmpeg -ac 1 -acodec pcm_s16le`` (syncnet_python's
extraction) converts them; resampling to a metric's rate is the metric's business
(:meth:`metrics.audio.Audio.resampled`). The alignment recorded is the sequence's fps and an
offset (seconds of the first sample after frame 0; a config's ``audio_offset``, default 0).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from metrics.audio import Audio
from metrics.errors import InputError

MIN_RATE = 8000
AUDIO_NAME = "audio.wav"


def read_audio(path: str | Path, fps: float, offset_s: float = 0.0) -> Audio:
    """Decode the first audio stream of ``path`` to mono int16 at its own rate.

    Raises:
        InputError: the file is missing or unreadable, has no audio stream, no samples, or a rate
            below 8 kHz; the message names the file.
    """
    samples, rate = _decode(Path(path))
    return Audio(np.ascontiguousarray(samples), rate, float(fps), float(offset_s), str(path))


def has_audio_stream(path: str | Path) -> bool:
    """Whether the media file ``path`` has an audio stream (the container is probed, nothing decoded)."""
    import av

    try:
        with av.open(str(path)) as container:
            return bool(container.streams.audio)
    except (av.error.FFmpegError, OSError, ValueError):
        return False


def beside_frames(folder: str | Path) -> Path | None:
    """``folder/audio.wav`` or ``<folder>.wav`` beside it, when present."""
    folder = Path(folder)
    for candidate in (folder / AUDIO_NAME, folder.with_name(folder.name + ".wav")):
        if candidate.is_file():
            return candidate
    return None


def audio_file_of(path: str | Path, audio: str | Path | None = None) -> Path | None:
    """Where the audio of the sequence at ``path`` (a frames folder, a sequence folder or a video)
    comes from, by the rules of the module docstring: ``audio`` when given, else the video itself
    when it has an audio stream, else a ``.wav`` beside the frames; None when it has none."""
    path = Path(path)
    if audio is not None:
        return Path(audio)
    if path.is_file():
        return path if has_audio_stream(path) else None
    return beside_frames(path)


def check_length(audio: Audio, frames: int) -> None:
    """Raise an InputError naming the file when ``audio`` does not cover ``frames`` frames (see the module docstring)."""
    expected = frames / audio.fps
    have = audio.seconds + audio.offset_s
    tolerance = max(2.0 / audio.fps, 0.1)
    if abs(have - expected) > tolerance:
        raise InputError(f"{audio.source}: audio of {audio.seconds:.3f} s (offset {audio.offset_s:g} s) for "
                         f"{frames} frames at {audio.fps:g} fps ({expected:.3f} s): wrong length")


def _decode(path: Path) -> tuple[np.ndarray, int]:
    import av

    if not path.is_file():
        raise InputError(f"{path}: audio file not found")
    try:
        with av.open(str(path)) as container:
            if not container.streams.audio:
                raise InputError(f"{path}: no audio stream")
            stream = container.streams.audio[0]
            rate = int(stream.rate or stream.codec_context.sample_rate or 0)
            if rate < MIN_RATE:
                raise InputError(f"{path}: audio sample rate {rate} Hz, below {MIN_RATE} Hz: wrong rate")
            resampler = av.AudioResampler(format="s16", layout="mono", rate=rate)
            chunks = []
            for frame in container.decode(stream):
                for out in resampler.resample(frame):
                    chunks.append(out.to_ndarray().reshape(-1))
            for out in resampler.resample(None):
                chunks.append(out.to_ndarray().reshape(-1))
    except InputError:
        raise
    except (av.error.FFmpegError, OSError, ValueError) as error:
        raise InputError(f"{path}: cannot read audio ({type(error).__name__}: {str(error).splitlines()[0][:160]})") from None
    samples = np.concatenate(chunks).astype(np.int16, copy=False) if chunks else np.zeros(0, np.int16)
    if samples.size == 0:
        raise InputError(f"{path}: the audio stream holds no samples")
    return samples, rate


def write_wav(path: str | Path, samples: np.ndarray, rate: int) -> Path:
    """Write mono int16 ``samples`` as a PCM ``.wav`` (scipy.io.wavfile)."""
    from scipy.io import wavfile

    path = Path(path)
    wavfile.write(str(path), int(rate), np.asarray(samples, dtype=np.int16))
    return path
