"""`cabench weights --download`: verified, atomic downloads from a local HTTP server (no network here).

The server (``http.server`` in a thread) serves files whose SHA-256 the test knows: the good file, a
wrong file, a truncated file (a complete response that is short), a server error, a transfer cut
mid-way (Content-Length promises more than is sent), and a zip archive holding the file. The manifest
entries point at it (the package's manifest is replaced for the test). Nothing may ever appear under
the final name unless it is the pinned file; the offline mode and a run without weights touch no
socket; a licence-gated entry needs ``--accept-licence``; the recorded SHA-256 follows the file used.
"""

from __future__ import annotations

import dataclasses
import hashlib
import http.server
import io
import json
import os
import socket
import threading
import time
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from benchmark import runner
from benchmark.cli import main
from metrics import manifest as manifest_module
from metrics import weights
from metrics.download import WeightsDownloadError, download
from metrics.manifest import Archive, ManifestEntry
from reports.publish import publish
from tests.run_helpers import config, write_videos


def _alexnet_trunk(seed: int) -> bytes:
    """A random-init torchvision AlexNet trunk (the file format of alexnet-owt-7be5be79.pth), as bytes."""
    import torchvision

    torch.manual_seed(seed)
    features = torchvision.models.alexnet(weights=None).features
    buffer = io.BytesIO()
    torch.save({f"features.{k}": v for k, v in features.state_dict().items()}, buffer)
    return buffer.getvalue()


GOOD = _alexnet_trunk(0)
OTHER = _alexnet_trunk(1)
SHA = hashlib.sha256(GOOD).hexdigest()


def _zip(member: str, data: bytes) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(f"pack/{member}", data)
        archive.writestr("pack/other.onnx", b"another model")
    return buffer.getvalue()


ARCHIVE = _zip("alexnet-owt-7be5be79.pth", GOOD)


class _Handler(http.server.BaseHTTPRequestHandler):
    requests: list[str] = []

    def do_GET(self):  # noqa: N802 - http.server's name
        _Handler.requests.append(self.path)
        routes = {"/good.pth": GOOD, "/wrong.pth": OTHER, "/truncated.pth": GOOD[: len(GOOD) // 2],
                  "/pack.zip": ARCHIVE, "/badpack.zip": _zip("alexnet-owt-7be5be79.pth", OTHER)}
        if self.path == "/error.pth":
            self.send_error(500, "server error")
            return
        if self.path == "/cut.pth":  # promises the whole file, sends half, hangs up
            self.send_response(200)
            self.send_header("Content-Length", str(len(GOOD)))
            self.end_headers()
            self.wfile.write(GOOD[: len(GOOD) // 3])
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        data = routes.get(self.path)
        if data is None:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def server():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def _entry(**changes) -> ManifestEntry:
    entry = ManifestEntry(name="lpips-alex", licence="test licence", used_by="LPIPS (net='alex') trunk",
                          metrics=("lpips",), hash_source="the test's own bytes", file="alexnet-owt-7be5be79.pth",
                          size=len(GOOD), sha256=SHA)
    return dataclasses.replace(entry, **changes)


@pytest.fixture
def use_manifest(monkeypatch, torch_home):
    """Replace the package's manifest by ``entries`` (the real one's other entries kept)."""

    def install(*entries: ManifestEntry):
        replaced = {e.name for e in entries}
        kept = tuple(e for e in manifest_module.manifest() if e.name not in replaced)
        monkeypatch.setattr(manifest_module, "manifest", lambda: (*entries, *kept))
        _Handler.requests.clear()

    return install


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_a_good_download_is_verified_and_lands_under_its_name(server, use_manifest, torch_home):
    use_manifest(_entry(urls=(f"{server}/good.pth",)))
    assert main(["weights", "--download", "lpips-alex", "--quiet"]) == 0
    folder = torch_home / "hub" / "checkpoints"
    assert _leftovers(folder) == ["alexnet-owt-7be5be79.pth"]
    assert (folder / "alexnet-owt-7be5be79.pth").read_bytes() == GOOD
    resolved = weights.resolve("lpips-alex")
    assert resolved.status == "found" and resolved.verified and resolved.sha256 == SHA
    assert download("lpips-alex", progress=False) == folder / "alexnet-owt-7be5be79.pth"  # there: not fetched again
    assert _Handler.requests == ["/good.pth"]


@pytest.mark.parametrize("route, why", [("wrong.pth", "SHA-256"), ("truncated.pth", "bytes, expected"),
                                        ("error.pth", "HTTPError"), ("cut.pth", "bytes, expected")])
def test_a_bad_source_leaves_nothing_under_the_final_name(server, use_manifest, torch_home, capsys, route, why):
    use_manifest(_entry(urls=(f"{server}/{route}",)))
    assert main(["weights", "--download", "lpips-alex", "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("cabench: error: lpips-alex: ") and f"{server}/{route}" in err[0]
    assert why in err[0], err[0]
    assert _leftovers(torch_home / "hub" / "checkpoints") == []


def test_the_next_source_is_tried_and_the_error_names_each(server, use_manifest, torch_home):
    use_manifest(_entry(urls=(f"{server}/error.pth", f"{server}/wrong.pth", f"{server}/good.pth")))
    assert download("lpips-alex", progress=False).read_bytes() == GOOD
    assert _Handler.requests == ["/error.pth", "/wrong.pth", "/good.pth"]
    (torch_home / "hub" / "checkpoints" / "alexnet-owt-7be5be79.pth").unlink()
    use_manifest(_entry(urls=(f"{server}/error.pth", f"{server}/cut.pth")))
    with pytest.raises(WeightsDownloadError, match=r"error\.pth: HTTPError.*cut\.pth: the file received is not the pinned file.*nothing was written"):
        download("lpips-alex", progress=False)


def test_an_interrupted_download_leaves_no_file_and_no_temporary(server, use_manifest, torch_home, monkeypatch):
    import torch.hub

    real = torch.hub.urlopen

    class Interrupted:
        def __init__(self, response):
            self.response, self.read_bytes = response, 0

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.response.close()

        def info(self):
            return self.response.info()

        def read(self, size):
            if self.read_bytes:
                raise KeyboardInterrupt  # Ctrl-C during the second chunk
            self.read_bytes += size
            return self.response.read(size)

    monkeypatch.setattr(torch.hub, "urlopen", lambda request: Interrupted(real(request)))
    folder = torch_home / "hub" / "checkpoints"
    stale = folder / ".alexnet-owt-7be5be79.pth.abc.download"
    stale.write_bytes(b"left by a killed download")
    os.utime(stale, (time.time() - 7200, time.time() - 7200))
    use_manifest(_entry(urls=(f"{server}/good.pth",)))
    with pytest.raises(KeyboardInterrupt):
        download("lpips-alex", progress=False)
    assert _leftovers(folder) == []  # neither the final name nor a temporary file, and the stale one is gone


def test_a_file_inside_a_verified_archive(server, use_manifest, torch_home):
    member_sha = SHA
    use_manifest(_entry(archive=Archive(urls=(f"{server}/badpack.zip", f"{server}/pack.zip"), file="pack.zip",
                                        sha256=hashlib.sha256(ARCHIVE).hexdigest(), member="alexnet-owt-7be5be79.pth"),
                        sha256=member_sha))
    path = download("lpips-alex", progress=False)
    assert path.read_bytes() == GOOD and _leftovers(path.parent) == [path.name]
    assert _Handler.requests == ["/badpack.zip", "/pack.zip"]  # the first archive's own hash is wrong


def test_the_licence_gate_and_registration_steps(server, use_manifest, torch_home, capsys):
    use_manifest(_entry(urls=(f"{server}/good.pth",), acceptance=True))
    assert main(["weights", "--download", "lpips-alex", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "needs your acceptance (test licence)" in err and "--accept-licence lpips-alex" in err
    assert _Handler.requests == [] and _leftovers(torch_home / "hub" / "checkpoints") == []
    assert main(["weights", "--download", "lpips-alex", "--accept-licence", "lpips-alex", "--quiet"]) == 0
    assert _Handler.requests == ["/good.pth"]
    assert main(["weights", "--download", "deca"]) == 2  # registration: no download at all, the steps instead
    assert "register at https://flame.is.tue.mpg.de/" in capsys.readouterr().err


@pytest.fixture
def no_socket(monkeypatch):
    """Every attempt to open a network connection fails the test."""
    attempts = []

    def refuse(*args, **kwargs):
        attempts.append(args)
        raise AssertionError("a socket was opened")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    return attempts


@pytest.mark.parametrize("variable", ["CABENCH_OFFLINE", "HF_HUB_OFFLINE"])
def test_offline_mode_touches_no_socket(use_manifest, no_socket, monkeypatch, capsys, torch_home, variable):
    use_manifest(_entry(urls=("https://download.pytorch.org/models/alexnet-owt-7be5be79.pth",)))
    monkeypatch.setenv(variable, "1")
    assert main(["weights", "--download", "lpips-alex", "--quiet"]) == 2
    assert "offline mode" in capsys.readouterr().err
    assert main(["weights", "--download", "sd15", "--accept-licence", "sd15"]) == 2
    capsys.readouterr()
    assert main(["weights", "--all"]) == 2 and len(capsys.readouterr().err.splitlines()) == 1
    assert main(["weights"]) == 0
    with pytest.raises(WeightsDownloadError, match="offline mode"):
        download("lpips-alex", progress=False)
    present = torch_home / "hub" / "checkpoints" / "alexnet-owt-7be5be79.pth"
    present.write_bytes(GOOD)
    assert download("lpips-alex", progress=False) == present  # already there: no network needed
    assert no_socket == []


def test_a_run_never_downloads_and_names_the_command(tmp_path, torch_home, no_socket):
    videos = write_videos(tmp_path / "videos", frames=3)
    report = runner.run_config(config(videos, tmp_path / "run", metrics=("l2", "lpips")), progress=False,
                               plots=False, report=False, log=lambda m: None)
    assert "lpips" not in report.per_frame.columns
    missing = pd.read_csv(tmp_path / "run" / "missing.csv")
    assert "run `cabench weights --download lpips-alex`" in missing["reason"].iloc[0]
    assert no_socket == []


def test_the_sha256_of_the_trunk_is_recorded_and_a_new_file_recomputes(server, use_manifest, tmp_path, torch_home):
    use_manifest(_entry(urls=(f"{server}/good.pth",)))
    assert main(["weights", "--download", "lpips-alex", "--quiet"]) == 0
    videos = write_videos(tmp_path / "videos", frames=3)
    run = config(videos, tmp_path / "run", metrics=("l2", "lpips"))
    first = runner.run_config(run, progress=False, plots=False, report=True, log=lambda m: None, publish=publish)
    assert np.isfinite(first.per_frame["lpips"]).all()
    metadata = json.loads((tmp_path / "run" / "metadata.json").read_text())
    assert metadata["weights"] == {"lpips": [{"name": "lpips-alex", "file": "alexnet-owt-7be5be79.pth", "sha256": SHA,
                                              "verified": True}]}
    html = (tmp_path / "run" / "report.html").read_text()
    assert SHA in html and "yes (the manifest&#x27;s file)" in html
    # another trunk, given explicitly: used, marked unverified, and the LPIPS parts are recomputed
    other = tmp_path / "other.pth"
    other.write_bytes(OTHER)
    second = runner.run_config(run.replace(options={"backbone_weights": str(other)}), progress=False,
                               plots=False, report=True, log=lambda m: None, publish=publish)
    assert set(second.computed_parts) == {f"synthetic/seq/{m}/canonical/lpips" for m in ("noisy", "blurred")}
    assert not np.allclose(second.per_frame["lpips"], first.per_frame["lpips"])
    record = json.loads((tmp_path / "run" / "metadata.json").read_text())["weights"]["lpips"][0]
    assert record == {"name": "lpips-alex", "file": "other.pth", "sha256": hashlib.sha256(OTHER).hexdigest(),
                      "verified": False}
    assert "unverified" in (tmp_path / "run" / "report.html").read_text()


def test_verify_rehashes_and_reports_a_mismatch(use_manifest, torch_home, capsys):
    use_manifest(_entry())
    target = torch_home / "hub" / "checkpoints" / "alexnet-owt-7be5be79.pth"
    target.write_bytes(GOOD)
    assert main(["weights", "--verify"]) == 0
    assert "found      lpips-alex" in capsys.readouterr().out
    target.write_bytes(OTHER)  # replaced in place (a new mtime): re-hashed, a mismatch
    assert main(["weights", "--verify"]) == 1
    out = capsys.readouterr().out
    assert "mismatch   lpips-alex" in out and f"(manifest: {SHA})" in out
    assert weights.resolve("lpips-alex").status == "mismatch"  # still usable, never as the published file


@pytest.mark.slow  # the demo trains nothing but renders every ablation: tens of seconds of CPU
def test_download_then_demo_gives_lpips_numbers(server, use_manifest, tmp_path, torch_home, capsys):
    """The issue's "done when": a fresh cache, `cabench weights --download lpips-alex`, then `cabench demo`
    (its smallest run: one sequence of 8 frames, 64 px, no training-frame run; every method and metric
    of the demo still runs, so LPIPS is computed on every row)."""
    use_manifest(_entry(urls=(f"{server}/good.pth",)))
    assert main(["weights", "--download", "lpips-alex", "--quiet"]) == 0
    assert main(["demo", "--out", str(tmp_path / "demo"), "--frames", "8", "--size", "64", "--sequences", "1",
                 "--no-train-frames", "--quiet"]) == 0
    per_frame = pd.read_csv(tmp_path / "demo" / "per_frame.csv")
    assert np.isfinite(per_frame["lpips"]).all() and len(per_frame)
    metadata = json.loads((tmp_path / "demo" / "metadata.json").read_text())
    assert metadata["weights"]["lpips"][0]["sha256"] == SHA and metadata["weights"]["lpips"][0]["verified"]
