"""The lazy registry behind the adapters, the dataset readers and the protocols."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from metrics.errors import CabenchError
from metrics.lazy import Registry

ROOT = Path(__file__).resolve().parents[1]


def test_lazy_entries_import_their_module_on_first_lookup_only():
    registry: Registry = Registry("thing")
    registry.register_lazy("decoder", "json:JSONDecoder")
    registry.register("one", 1)
    assert registry.keys() == ["decoder", "one"] and "decoder" in registry and len(registry) == 2
    import json

    assert registry.get("decoder") is json.JSONDecoder and registry["one"] == 1
    assert registry.targets() == {"decoder": "json:JSONDecoder", "one": None}


def test_unknown_names_suggest_the_closest_and_list_all():
    registry: Registry = Registry("adapter")
    registry.register("insta", object())
    registry.register("nerface", object())
    with pytest.raises(CabenchError, match=r"unknown adapter 'instaa' \(did you mean 'insta'\?\); choose from insta, nerface"):
        registry.get("instaa")
    with pytest.raises(CabenchError, match=r"unknown adapter 'zzz'; choose from"):
        registry.get("zzz")


def test_a_name_is_registered_once_and_targets_are_module_colon_attribute():
    registry: Registry = Registry("thing")
    registry.register("a", 1)
    with pytest.raises(ValueError, match="registered twice"):
        registry.register_lazy("a", "json:loads")
    with pytest.raises(ValueError, match="module:attribute"):
        registry.register_lazy("b", "json.loads")


def test_every_catalogue_entry_is_a_class_of_its_key():
    from baselines.catalogue import ADAPTERS

    for key, cls in ADAPTERS.items():
        assert cls.key == key, (key, cls)


def test_every_dataset_kind_names_a_reader():
    from benchmark.datasets import KINDS, READERS

    assert KINDS == ("insta", "synthetic", "imavatar", "pointavatar", "nerface", "frames")
    assert {READERS[kind].layout for kind in KINDS} == {"insta", "imavatar", "nerface", "frames"}


def test_listing_adapters_and_kinds_imports_none_of_them():
    code = ("import sys, baselines, benchmark.datasets as d\nassert 'degraded' in baselines.list_adapters() and d.KINDS\n"
            "loaded = [m for m in ('baselines.folders', 'baselines.insta', 'baselines.consistentavatar', "
            "'benchmark.datasets.insta', 'benchmark.datasets.nerface') if m in sys.modules]\nassert not loaded, loaded\n")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]


def test_every_set_metric_says_why_it_cannot_run_under_a_protocol():
    from metrics import registry

    sets = [registry.get(name) for name in registry.list_metrics() if registry.get(name).kind == "set"]
    assert {spec.name for spec in sets} >= {"fid", "kid", "fvd"}
    for spec in sets:
        assert spec.protocol_check is not None, spec.name
        assert "not part of protocol" in spec.protocol_check("psnr-only-protocol", dict(spec.defaults)), spec.name
