"""Unusable weight files never crash: a few hundred random, truncated and mangled files, each given to the
loaders of LPIPS's trunk, RAFT and DECA (torch's weights-only unpickler and zip reader), must come out as
"found but unusable: <why>", one line naming the file, and never as an exception.

Before the fix, 34 of 300 random files escaped as KeyError, IndexError or struct.error, and a text file
named alexnet-owt-7be5be79.pth crashed `cabench weights` and `cabench eval` with ``KeyError: 101``.
"""

from __future__ import annotations

import io
import pickle
import zipfile

import numpy as np
import torch

from metrics import weights

KINDS = ("lpips-alex", "raft-small", "deca")


def _checkpoint(legacy: bool) -> bytes:
    """A small real checkpoint (zip format, or the older pickle stream) to truncate and mangle."""
    buffer = io.BytesIO()
    state = {"features.0.weight": torch.arange(48, dtype=torch.float32).reshape(3, 4, 2, 2), "x": torch.ones(5)}
    torch.save(state, buffer, _use_new_zipfile_serialization=not legacy)
    return buffer.getvalue()


def _files(rng: np.random.Generator) -> list[bytes]:
    """300 byte strings no loader can use: random bytes (some behind a zip or pickle magic number),
    text, truncations of real checkpoints at random points, real checkpoints with random bytes flipped,
    zip archives holding something else, and pickles of other objects."""
    zip_format, legacy = _checkpoint(False), _checkpoint(True)
    files: list[bytes] = [b"", b"hello this is text\n", b"PK\x03\x04", b"\x80\x02", b"\x80\x02}q\x00."]
    for _ in range(76):
        files.append(rng.integers(0, 256, int(rng.integers(1, 4096)), dtype=np.uint8).tobytes())
    for magic in (b"PK\x03\x04", b"\x80\x02", b"\x80\x04\x95", b"\x8a\x0al\xfc\x9cF\xf9 j\xa8P\x19."):
        for _ in range(15):
            files.append(magic + rng.integers(0, 256, int(rng.integers(1, 2048)), dtype=np.uint8).tobytes())
    for source in (zip_format, legacy):
        for cut in rng.integers(1, len(source) - 1, 50):
            files.append(source[: int(cut)])
        for _ in range(25):
            mangled = bytearray(source)
            for position in rng.integers(0, len(source), int(rng.integers(1, 16))):
                mangled[int(position)] = int(rng.integers(0, 256))
            files.append(bytes(mangled))
    for payload in (b"not a tensor", pickle.dumps([1, 2, 3]), pickle.dumps({"a": 1})):
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as archive:
            archive.writestr("archive/data.pkl", payload)
        files.append(buffer.getvalue())
    files += [pickle.dumps(value, protocol=2) for value in ({"x": 1}, [1.0], "text", {1: 2}, {"a": {"b": 3}})]
    files.append(b"a text file, as a user might save an HTML error page: <html>404</html>\n" * 20)
    return files


def test_three_hundred_unusable_files_are_found_but_unusable_never_an_exception(tmp_path, torch_home):
    rng = np.random.default_rng(24)
    files = _files(rng)
    assert len(files) == 300
    escaped = []
    for index, data in enumerate(files):
        path = tmp_path / f"file{index:03d}.pth"
        path.write_bytes(data)
        for name in KINDS:
            try:
                resolved = weights.resolve(name, path)
            except Exception as error:  # noqa: BLE001 - what the test counts
                escaped.append((index, name, type(error).__name__, str(error)[:80]))
                continue
            assert resolved.status == "unusable", (index, name, resolved)
            assert str(path) in resolved.reason and "\n" not in resolved.reason
    assert escaped == []
