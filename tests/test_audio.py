"""Audio in sequences: a video's audio stream, a .wav beside the frames or named in the config, checked."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from scipy.io import wavfile

from benchmark.datasets import open_dataset
from benchmark.datasets.adhoc import read_frames_sequence
from benchmark.datasets.synthetic import motion, write_sequence
from metrics.audio import Audio
from metrics.errors import InputError
from tests.audio_helpers import write_talking_video

RATE = 16000


def _tone(frames: int, fps: int = 25, rate: int = RATE) -> np.ndarray:
    t = np.arange(frames * rate // fps) / rate
    return (8000 * np.sin(2 * np.pi * 220 * t)).astype(np.int16)


def _frames(tmp_path, count=10):
    folder = tmp_path / "gt"
    folder.mkdir()
    import cv2

    rng = np.random.default_rng(0)
    for i in range(count):
        cv2.imwrite(str(folder / f"{i:05d}.png"), rng.integers(0, 255, (32, 32, 3), dtype=np.uint8))
    return folder


def test_video_audio_stream_is_read_exactly(tmp_path):
    frames = np.random.default_rng(1).integers(0, 255, (20, 64, 64, 3), dtype=np.uint8)
    samples = _tone(20)
    seq = read_frames_sequence(write_talking_video(tmp_path / "talk.mkv", frames, 25, samples))
    audio = seq.audio()
    assert (audio.rate, audio.fps, audio.offset_s) == (RATE, 25.0, 0.0)
    np.testing.assert_array_equal(audio.samples, samples)  # PCM in Matroska: bit-exact through PyAV
    silent = read_frames_sequence(write_talking_video(tmp_path / "silent.mp4", frames, 25, None))
    assert silent.audio_file is None and silent.audio() is None


def test_wav_beside_frames_and_named_in_config(tmp_path):
    folder = _frames(tmp_path)
    assert read_frames_sequence(folder).audio_file is None
    wavfile.write(tmp_path / "gt.wav", RATE, _tone(10))
    seq = read_frames_sequence(folder)
    assert seq.audio_file == tmp_path / "gt.wav"
    with pytest.raises(InputError, match="no frame rate"):  # a frames folder records no fps
        seq.audio()
    seq.fps = 25.0
    np.testing.assert_array_equal(seq.audio().samples, _tone(10))
    other = tmp_path / "speech.wav"
    wavfile.write(other, 22050, _tone(10, rate=22050))
    named = read_frames_sequence(folder, audio=other, audio_offset=0.04)
    named.fps = 25.0
    audio = named.audio()
    assert (audio.rate, audio.offset_s, audio.source) == (22050, 0.04, str(other))


def test_config_audio_per_sequence(tmp_path):
    from benchmark.config import parse_config
    from benchmark.engine.plan import open_datasets

    write_sequence(tmp_path / "data", frames=8, size=64, seed=0, progress=False)
    wavfile.write(tmp_path / "astronaut.wav", RATE, _tone(8))
    config = parse_config({"datasets": [{"path": "data", "audio": "{sequence}.wav", "audio_offset": 0.0}],
                           "methods": [{"name": "m", "frames": "x"}]}, base=tmp_path)
    (dataset, sequences), = open_datasets(config)
    assert sequences[0].audio_file == tmp_path / "astronaut.wav"
    np.testing.assert_array_equal(sequences[0].audio().samples, _tone(8))


@pytest.mark.parametrize("case, match", [
    ("missing", "speech.wav: audio file not found"),
    ("unreadable", "speech.wav: cannot read audio"),
    ("length", "speech.wav: audio of 0.200 s .* for 10 frames at 25 fps .*wrong length"),
    ("rate", "speech.wav: audio sample rate 4000 Hz, below 8000 Hz: wrong rate"),
    ("empty", "speech.wav: (the audio stream holds no samples|cannot read audio)"),
])
def test_bad_audio_is_one_line_naming_the_file(tmp_path, case, match):
    folder = _frames(tmp_path)
    wav = tmp_path / "speech.wav"
    if case == "unreadable":
        wav.write_bytes(b"RIFF\x00\x00not audio at all")
    elif case == "length":
        wavfile.write(wav, RATE, _tone(5))
    elif case == "rate":
        wavfile.write(wav, 4000, _tone(10, rate=4000))
    elif case == "empty":
        wavfile.write(wav, RATE, np.zeros(0, np.int16))
    seq = read_frames_sequence(folder, audio=wav)
    seq.fps = 25.0
    with pytest.raises(InputError, match=match) as error:
        seq.audio()
    assert "\n" not in str(error.value)


def test_audio_alignment_helpers():
    audio = Audio(np.arange(1, 41, dtype=np.int16), rate=100, fps=10, offset_s=0.1)  # starts at frame 1
    np.testing.assert_array_equal(audio.for_frames(0, 2), [0] * 10 + list(range(1, 11)))
    np.testing.assert_array_equal(audio.for_frames(4, 6), list(range(31, 41)) + [0] * 10)
    assert len(audio.aligned(3).samples) == 30


def test_synth_audio_follows_the_mouth_and_changes_no_frame(tmp_path):
    write_sequence(tmp_path / "plain", frames=30, size=64, seed=3, progress=False)
    code = subprocess.run([sys.executable, "-m", "benchmark", "synth", "--out", str(tmp_path / "voiced"), "--frames", "30",
                           "--size", "64", "--seed", "3", "--audio", "--audio-shift", "5", "--quiet"], capture_output=True)
    assert code.returncode == 0, code.stderr
    plain, voiced = tmp_path / "plain" / "astronaut", tmp_path / "voiced" / "astronaut"
    for image in sorted((plain / "images").iterdir()):
        assert image.read_bytes() == (voiced / "images" / image.name).read_bytes()
    assert (plain / "flame/exp/00007.txt").read_bytes() == (voiced / "flame/exp/00007.txt").read_bytes()
    seq = open_dataset(voiced).sequences[0]
    audio = seq.audio()
    assert audio.rate == RATE and len(audio.samples) == 30 * RATE // 25
    # loudness per frame follows the mouth opening; the shifted track follows it 5 frames later
    jaw = np.array([p.jaw_open for p in motion(30, 25.0, 3)])
    loud = np.sqrt(np.mean(audio.samples.reshape(30, -1).astype(float) ** 2, axis=1))
    assert np.corrcoef(loud, jaw)[0, 1] > 0.9
    _, shifted = wavfile.read(voiced / "audio_shifted.wav")
    late = np.sqrt(np.mean(shifted.reshape(30, -1).astype(float) ** 2, axis=1))
    assert np.corrcoef(late[5:], jaw[:-5])[0, 1] > 0.9
    assert np.corrcoef(late[5:], jaw[5:])[0, 1] < np.corrcoef(late[5:], jaw[:-5])[0, 1]


@pytest.mark.parametrize("flags, match", [(["--audio-shift", "2"], "--audio-shift needs --audio"),
                                          (["--audio", "--audio-shift", "9"], "--audio-shift 9: must be shorter")])
def test_synth_audio_arguments_are_checked(tmp_path, flags, match):
    done = subprocess.run([sys.executable, "-m", "benchmark", "synth", "--out", str(tmp_path), "--frames", "9",
                           "--size", "64", "--quiet", *flags], capture_output=True, text=True)
    assert done.returncode == 2 and match in done.stderr and done.stderr.strip().count("\n") == 0
    assert not any(tmp_path.iterdir())  # checked before anything is written


def test_aac_audio_of_an_mp4_is_aligned_to_its_first_frame(tmp_path):
    """AAC's encoder delay (priming samples) is removed by the decoder: the track starts at frame 0."""
    rng = np.random.default_rng(0)
    samples = (rng.standard_normal(RATE) * 3000).astype(np.int16)
    path = write_talking_video(tmp_path / "talk.mp4", np.zeros((25, 32, 32, 3), np.uint8), 25, samples)
    decoded = read_frames_sequence(path).audio().samples.astype(np.float64)
    reference = samples.astype(np.float64)
    lags = range(-1500, 1500)
    score = [np.dot(decoded[k:k + 8000], reference[:8000]) if k >= 0 else np.dot(decoded[:8000], reference[-k:8000 - k])
             for k in lags]
    assert lags[int(np.argmax(score))] == 0
