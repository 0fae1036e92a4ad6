"""The weights manifest is well-formed data: every entry has a stable name, well-formed URLs, full SHA-256
values (that start with the prefix its file name carries), the metrics that use it, and either a download
or the steps to get the file; every name the code registers is in it; a malformed entry is refused."""

from __future__ import annotations

import dataclasses
import re
from urllib.parse import urlparse

import pytest

from metrics import load_metrics, weights
from metrics.errors import CabenchError
from metrics.manifest import _validate, manifest, manifest_entry
from metrics.weights import _KNOWN, ALIASES, get_weight, resolve

REQUIRED = {"lpips-alex", "lpips-vgg", "raft-large", "raft-small", "deca", "dlib-landmarks68", "dlib-face-recognition",
            "fid-inception-pytorch-fid", "fid-inception-torch-fidelity", "fid-inception-clean-fid",
            "fvd-i3d-stylegan-v", "fvd-i3d-videogpt", "arcface-buffalo-l", "arcface-antelopev2", "syncnet-v2",
            "syncnet-s3fd", "s3fd-face-alignment", "fan-2d", "sd15", "clip-vit-large"}


def test_every_entry_is_well_formed():
    entries = manifest()
    assert REQUIRED <= {e.name for e in entries}
    for entry in entries:
        assert entry.metrics and entry.licence and entry.hash_source and entry.used_by, entry.name
        for url in (*entry.urls, *(entry.archive.urls if entry.archive else ())):
            parsed = urlparse(url)
            assert parsed.scheme == "https" and parsed.netloc and parsed.path, url
        if entry.sha256:
            assert re.fullmatch(r"[0-9a-f]{64}", entry.sha256)
        if entry.sha256_prefix:  # torch hub's convention: the file name carries the start of the SHA-256
            assert entry.sha256_prefix in entry.file and entry.sha256.startswith(entry.sha256_prefix), entry.name
        assert entry.downloadable or entry.steps, entry.name
        assert (entry.acceptance or not entry.downloadable) or "non-commercial" not in entry.licence, entry.name
        assert entry.how_to_get()


def test_licences_that_restrict_use_need_acceptance():
    for name in ("deca", "arcface-buffalo-l", "arcface-antelopev2", "syncnet-v2", "sd15"):
        assert manifest_entry(name).acceptance
    assert manifest_entry("deca").downloadable is False and "flame.is.tue.mpg.de" in manifest_entry("deca").steps


def test_every_registered_weight_is_in_the_manifest_and_old_keys_still_resolve():
    load_metrics()
    import reference.weights  # noqa: F401 - registers the reference pipeline's file

    assert all(manifest_entry(key) for key in _KNOWN)
    for old, name in ALIASES.items():
        assert get_weight(old).key == name
    assert resolve("alexnet").name == "lpips-alex"


@pytest.mark.parametrize("change, message", [
    ({"urls": ("ftp://example.org/x.pth",)}, "malformed URL"),
    ({"urls": ("https:///x.pth",)}, "malformed URL"),
    ({"sha256": "abc"}, "64 lower-case hex"),
    ({"sha256_prefix": "deadbeef"}, "does not start with sha256_prefix"),
    ({"metrics": ()}, "no metrics named"),
    ({"download": False, "steps": ""}, "needs steps"),
    ({"sha256": None, "sha256_prefix": None}, "no pinned SHA-256"),
    ({"name": "LPIPS Alex"}, "lower-case"),
])
def test_a_malformed_entry_is_refused(change, message):
    entry = dataclasses.replace(manifest_entry("lpips-alex"), **change)
    with pytest.raises(CabenchError, match=message):
        _validate(entry)


def test_an_explicit_file_with_another_hash_is_unverified(tmp_path, torch_home):
    import torch

    from metrics.face import DecaEncoder

    state = {k: torch.zeros((), dtype=v.dtype).expand(v.shape) for k, v in DecaEncoder().state_dict().items()}
    path = tmp_path / "my_deca.tar"
    torch.save({"E_flame": state}, path)
    found = resolve("deca", path)
    assert found.status == "unverified" and found.usable and not found.verified and found.path == path
    assert found.record() == {"name": "deca", "file": "my_deca.tar", "sha256": found.sha256, "verified": False}
    missing = resolve("deca")
    assert missing.status == "missing" and "deca_model.tar" in missing.reason and "flame.is.tue.mpg.de" in missing.reason


def test_a_hub_entry_is_fetched_at_its_pinned_commit_into_the_hub_cache(torch_home, monkeypatch, tmp_path):
    import huggingface_hub

    from metrics import download

    calls = []

    def snapshot_download(repo_id, revision=None, allow_patterns=None):
        calls.append((repo_id, revision, allow_patterns))
        return str(tmp_path / "snapshot")

    monkeypatch.setattr(huggingface_hub, "snapshot_download", snapshot_download)
    entry = manifest_entry("clip-vit-large")
    assert download.download("clip-vit-large", progress=False) == tmp_path / "snapshot"
    assert calls == [(entry.repo, entry.revision, list(entry.allow))] and re.fullmatch(r"[0-9a-f]{40}", entry.revision)
    monkeypatch.setattr(weights, "hub_snapshot", lambda e: None)
    missing = resolve("clip-vit-large")
    assert missing.status == "missing" and "cabench weights --download clip-vit-large" in missing.reason
    monkeypatch.setattr(weights, "hub_snapshot", lambda e: tmp_path / "snapshot")
    found = resolve("clip-vit-large")
    assert found.verified and found.record()["revision"] == entry.revision
    with pytest.raises(CabenchError, match="no weight named 'nothing'.*lpips-alex"):
        resolve("nothing")
