"""The quality-regression pytest plugin: used on a small synthetic run; a degraded output fails it."""

from __future__ import annotations

from pathlib import Path

import pytest

from reports.publish import publish
from reports.pytest_plugin import QualityRegression, compare, quality_values

pytest_plugins = ["pytester"]

RECORDED = Path(__file__).parent / "quality" / "test_small_synthetic_run_holds_its_quality.json"
TOLERANCES = {"psnr": 0.1, "ssim": 0.002, "l2": 2e-5, "tof": 0.01}


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    """A small synthetic talking-head sequence (``cabench synth``'s dataset)."""
    from benchmark.datasets.synthetic import write_sequence

    root = tmp_path_factory.mktemp("synthetic")
    write_sequence(root, frames=8, size=64, seed=0, name="s0", progress=False)
    return root


def _run_summary(data, tmp_path, blur: float, protocol: str | tuple[str, ...] = "canonical"):
    """A small run: the synthetic sequence's frames over-smoothed by ``blur`` px (the ``degraded``
    adapter), through the runner, with image metrics and tOF (DIS flow, offline), under ``protocol``."""
    from benchmark import runner
    from benchmark.config import DatasetConfig, MethodConfig, RunConfig

    metrics = ("l2", "psnr", "ssim", "tof")
    config = RunConfig(datasets=(DatasetConfig(name="synthetic", path=str(data), kind="synthetic"),),
                       methods=(MethodConfig(name="blurred", adapter="degraded",
                                             settings={"degradation": "oversmooth", "strength": blur}),),
                       metrics=metrics, out=str(tmp_path / "run"), split="all", batch_size=8, protocol=protocol)
    report = runner.run_config(config, progress=False, plots=False, report=False, log=lambda m: None, publish=publish)
    return report.summary


def test_small_synthetic_run_holds_its_quality(quality_regression, synthetic, tmp_path):
    quality_regression.check(quality_values(_run_summary(synthetic, tmp_path, blur=0.8)), tolerances=TOLERANCES)


def test_a_degraded_output_fails_the_recorded_quality(synthetic, tmp_path):
    values = quality_values(_run_summary(synthetic, tmp_path, blur=1.6))
    with pytest.raises(pytest.fail.Exception) as failure:
        QualityRegression(RECORDED, update=False).check(values)
    message = str(failure.value)
    assert "synthetic/blurred/canonical/psnr: dropped" in message
    assert "synthetic/blurred/canonical/ssim: dropped" in message and "synthetic/blurred/canonical/l2: rose" in message


def test_each_protocol_of_a_run_is_checked_on_its_own(synthetic, tmp_path):
    """One run under two protocols: a value per (protocol, metric), so a canonical SSIM lowered by 0.05
    (25x the tolerance) fails, named with its protocol, whatever the other protocol's SSIM says."""
    summary = _run_summary(synthetic, tmp_path, blur=0.8, protocol=("canonical", "nerface"))
    values = quality_values(summary)
    assert set(summary["protocol"]) == {"canonical", "nerface"} and len(values) == len(summary)
    assert values["synthetic/blurred/canonical/ssim"] != values["synthetic/blurred/nerface/ssim"]
    recorded = tmp_path / "quality.json"
    QualityRegression(recorded, update=True).check(values, tolerances=TOLERANCES)
    QualityRegression(recorded, update=False).check(values)
    degraded = {key: value - 0.05 if key.endswith("/canonical/ssim") else value for key, value in values.items()}
    with pytest.raises(pytest.fail.Exception) as failure:
        QualityRegression(recorded, update=False).check(degraded)
    problems = str(failure.value).splitlines()[1:]
    assert len(problems) == 1 and problems[0].strip().startswith("synthetic/blurred/canonical/ssim: dropped")


def test_rows_that_would_share_a_key_are_refused():
    import pandas as pd

    summary = pd.DataFrame({"method": ["m", "m"], "metric": ["psnr", "psnr"], "mean": [30.0, 31.0]})
    with pytest.raises(ValueError, match="'m/psnr'"):
        quality_values(summary)


def test_directions_and_tolerances():
    recorded = {"m/psnr": 30.0, "m/l2": 0.001, "m/ssim": 0.9}
    tolerances = {"psnr": 0.1, "l2": 1e-5, "ssim": 0.01}
    assert compare({"m/psnr": 35.0, "m/l2": 0.0001, "m/ssim": 0.99}, recorded, tolerances) == []  # all better
    assert compare({"m/psnr": 29.95, "m/l2": 0.001005, "m/ssim": 0.895}, recorded, tolerances) == []  # within
    problems = compare({"m/psnr": 29.8, "m/l2": 0.0011, "m/ssim": 0.9}, recorded, tolerances)
    assert [p.split(":")[0] for p in problems] == ["m/l2", "m/psnr"]
    assert compare({"m/psnr": 30.0}, {"m/psnr": 30.0, "m/ssim": 0.9}, {})[0].startswith("m/ssim: recorded")
    assert "never recorded" in compare({"m/psnr": 30.0, "m/tof": 1.0}, {"m/psnr": 30.0}, {})[0]
    # Default tolerance: 1% of the recorded value.
    assert compare({"m/psnr": 29.75}, {"m/psnr": 30.0}, {}) == []
    assert compare({"m/psnr": 29.6}, {"m/psnr": 30.0}, {}) != []


def test_quality_update_records_and_a_later_drop_fails(pytester):
    pytester.makepyfile(test_model="""
        import os

        def test_model(quality_regression):
            quality_regression.check({"m/psnr": float(os.environ["PSNR"])}, tolerances={"psnr": 0.5})
    """)
    os_env = pytester._monkeypatch
    os_env.setenv("PSNR", "30.0")
    first = pytester.runpytest_inprocess("-p", "reports.pytest_plugin", "-q")
    first.assert_outcomes(failed=1)
    first.stdout.fnmatch_lines(["*--quality-update*"])
    pytester.runpytest_inprocess("-p", "reports.pytest_plugin", "-q", "--quality-update").assert_outcomes(passed=1)
    assert (pytester.path / "quality" / "test_model.json").exists()
    os_env.setenv("PSNR", "31.0")
    pytester.runpytest_inprocess("-p", "reports.pytest_plugin", "-q").assert_outcomes(passed=1)
    os_env.setenv("PSNR", "29.0")
    dropped = pytester.runpytest_inprocess("-p", "reports.pytest_plugin", "-q")
    dropped.assert_outcomes(failed=1)
    dropped.stdout.fnmatch_lines(["*m/psnr: dropped from 30 to 29*"])


def test_the_plugin_is_registered_as_a_pytest11_entry_point():
    import tomllib

    project = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())
    entry_points = project["project"]["entry-points"]["pytest11"]
    assert entry_points == {"reports.pytest_plugin": "reports.pytest_plugin"}


def test_reference_values_fail_when_they_move_either_way():
    from metrics import registry

    if "flow_gap" not in registry.list_metrics():
        pytest.skip("the temporal metrics are not installed")
    recorded = {"m/flow_mag_gt": 1.0, "m/flow_gap": 0.5}
    assert compare({"m/flow_mag_gt": 1.0, "m/flow_gap": 0.1}, recorded, {"flow_mag_gt": 0.01}) == []
    for moved in (0.9, 1.1):
        problems = compare({"m/flow_mag_gt": moved, "m/flow_gap": 0.5}, recorded, {"flow_mag_gt": 0.01})
        assert len(problems) == 1 and "m/flow_mag_gt: changed" in problems[0]
