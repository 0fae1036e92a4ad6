"""pytest plugin: quality regression of a model's metrics against recorded values.

Registered through the ``pytest11`` entry point (pyproject.toml), so any project that installs
cabench gets the ``quality_regression`` fixture and the ``--quality-update`` option::

    def test_my_model(quality_regression):
        summary = run_my_evaluation()                      # e.g. benchmark.runner.run_config(...).summary
        quality_regression.check(quality_values(summary), tolerances={"psnr": 0.1, "ssim": 0.002})

Convention: the recorded values live in ``<test file folder>/quality/<test name>.json``
(``{"values": {...}, "tolerances": {...}}``). :func:`quality_values` keys a summary's values
``dataset/method/protocol/column`` (any other names may be checked too); a value's direction comes
from the metric registry through the column name after the last ``/``. The protocol is part of the
key because one run may compute the same metric under several protocols (``protocol = ["canonical",
"nerface"]``), each its own number: keyed without it, one protocol's values would hide the others'.
A metric may move in its good direction freely, and in its bad direction by at most its tolerance
(absolute, in the metric's unit): a PSNR drop beyond the tolerance fails, a rise passes. A value
recorded but no longer produced, or produced but never recorded, fails too (the comparison must
cover the same things). ``pytest --quality-update`` records the current values instead of comparing.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from pathlib import Path

import pytest

DEFAULT_RELATIVE_TOLERANCE = 0.01


def quality_values(summary) -> dict[str, float]:
    """``{"dataset/method/protocol/column": mean}`` from a run summary (long form: method, metric, mean
    [, dataset][, protocol]; a part the summary lacks is left out of the key). Two rows that would share
    a key are an error: a summary of other groups (e.g. per sequence) needs its own keys."""
    values: dict[str, float] = {}
    for record in summary.to_dict("records"):
        parts = (record.get("dataset"), record["method"], record.get("protocol"), record["metric"])
        key = "/".join(str(part) for part in parts if isinstance(part, str) and part)
        if key in values:
            raise ValueError(f"quality_values: two summary rows are both {key!r}; give each group its own key")
        values[key] = float(record["mean"])
    return values


def higher_is_better(key: str) -> bool:
    from reports.tables import direction

    return direction(key.rsplit("/", 1)[-1])[0]


def scores(key: str) -> bool:
    from reports.tables import scores as column_scores

    return column_scores(key.rsplit("/", 1)[-1])


def compare(values: Mapping[str, float], recorded: Mapping[str, float], tolerances: Mapping[str, float]) -> list[str]:
    """The regressions of ``values`` against ``recorded`` (empty when the quality held)."""
    problems = []
    for key in sorted(set(recorded) - set(values)):
        problems.append(f"{key}: recorded {recorded[key]:.6g} but not produced any more")
    for key in sorted(set(values) - set(recorded)):
        problems.append(f"{key}: {values[key]:.6g} was never recorded (run pytest --quality-update)")
    for key in sorted(set(values) & set(recorded)):
        value, old = float(values[key]), float(recorded[key])
        if math.isnan(value) and math.isnan(old):
            continue
        if math.isnan(value) or math.isnan(old):
            problems.append(f"{key}: {value:.6g} against recorded {old:.6g} (one of them is NaN)")
            continue
        tolerance = tolerance_for(key, old, tolerances)
        if not scores(key):  # a reference value (e.g. the ground truth's own curve): no good direction
            if abs(value - old) > tolerance:
                problems.append(f"{key}: changed from {old:.6g} to {value:.6g} (a reference value; tolerance {tolerance:.3g})")
            continue
        higher = higher_is_better(key)
        worse = (old - value) if higher else (value - old)
        if worse > tolerance:
            arrow = "dropped" if higher else "rose"
            problems.append(f"{key}: {arrow} from {old:.6g} to {value:.6g} ({'higher' if higher else 'lower'} is better; "
                            f"tolerance {tolerance:.3g})")
    return problems


def tolerance_for(key: str, recorded: float, tolerances: Mapping[str, float]) -> float:
    """The tolerance of ``key``: by full key, then by column name, else 1% of the recorded value."""
    column = key.rsplit("/", 1)[-1]
    if key in tolerances:
        return float(tolerances[key])
    if column in tolerances:
        return float(tolerances[column])
    return DEFAULT_RELATIVE_TOLERANCE * abs(recorded) if math.isfinite(recorded) else 0.0


class QualityRegression:
    """The ``quality_regression`` fixture's object (see the module docstring)."""

    def __init__(self, path: Path, update: bool):
        self.path = path
        self.update = update

    def check(self, values: Mapping[str, float], tolerances: Mapping[str, float] | None = None) -> None:
        tolerances = dict(tolerances or {})
        values = {str(k): float(v) for k, v in values.items()}
        if self.update:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            record = {"values": values, "tolerances": tolerances}
            self.path.write_text(json.dumps(record, indent=1, sort_keys=True, allow_nan=True) + "\n")
            return
        if not self.path.exists():
            pytest.fail(f"{self.path}: no recorded quality values; run pytest --quality-update to record them",
                        pytrace=False)
        recorded = json.loads(self.path.read_text())
        merged_tolerances = {**recorded.get("tolerances", {}), **tolerances}
        problems = compare(values, recorded.get("values", {}), merged_tolerances)
        if problems:
            pytest.fail(f"quality regression against {self.path}:\n  " + "\n  ".join(problems), pytrace=False)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("cabench", "cabench quality regression")
    group.addoption("--quality-update", action="store_true", default=False,
                    help="record the current metric values of quality_regression tests instead of comparing")


@pytest.fixture
def quality_regression(request: pytest.FixtureRequest) -> QualityRegression:
    """Compare metrics to ``quality/<test name>.json`` beside the test file (``--quality-update`` records)."""
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.name)
    path = Path(request.node.path).parent / "quality" / f"{name}.json"
    return QualityRegression(path, bool(request.config.getoption("--quality-update")))
