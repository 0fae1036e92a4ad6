"""The import graph (data flows datasets -> adapters -> metrics -> results -> reports) and no side channels.

Read from the source with ``ast``, function-level imports included, so a lazy import counts too.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("metrics", "reference", "baselines", "benchmark", "reports")


def _imports(package: str) -> dict[str, set[str]]:
    """{module file: the project modules it imports} for every module of ``package``."""
    found = {}
    for path in sorted((ROOT / package).rglob("*.py")):
        names = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names |= {node.module} | {f"{node.module}.{alias.name}" for alias in node.names}
        found[str(path.relative_to(ROOT))] = {n for n in names if n.split(".")[0] in PACKAGES}
    return found


def _offending(package: str, allowed) -> dict[str, list[str]]:
    offending = {}
    for module, names in _imports(package).items():
        bad = sorted(n for n in names if not allowed(n))
        if bad:
            offending[module] = bad
    return offending


def test_reports_import_only_the_results_layer_the_registry_and_themselves():
    def allowed(name: str) -> bool:
        return name.startswith(("reports", "benchmark.results", "metrics.registry", "metrics.errors")) or name in (
            "benchmark", "metrics")

    assert _offending("reports", allowed) == {}


def test_the_results_layer_imports_neither_the_engine_nor_the_reports():
    def allowed(name: str) -> bool:
        return name.startswith(("benchmark.results", "benchmark.stamps", "metrics.errors")) or name == "benchmark"

    assert _offending("benchmark/results", allowed) == {}


def test_metrics_and_reference_do_not_import_the_layers_above():
    assert _offending("metrics", lambda n: n.startswith("metrics")) == {}
    assert _offending("reference", lambda n: not n.startswith(("benchmark", "reports"))) == {}


def test_the_results_layer_and_the_tables_load_without_torch():
    code = ("import sys\nimport benchmark.results.merge, benchmark.results.folder, benchmark.results.summary\n"
            "import benchmark.results.schema, benchmark.results.fingerprint\nassert 'torch' not in sys.modules, 'torch'\n")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]


def test_no_results_travel_in_dataframe_attrs():
    uses = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(node, ast.Attribute) and node.attr == "attrs":
                    uses.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    # The one remaining use: the path of the timing CSV that `cabench plots --timing` read.
    assert all(use.startswith(("reports/plots.py", "benchmark/commands/plots.py")) for use in uses), uses


def test_the_engine_and_the_results_layer_keep_no_module_level_state():
    """No module-level dict, list or set in the engine or the results layer: results travel as values."""
    for path in sorted((ROOT / "benchmark" / "engine").glob("*.py")) + sorted((ROOT / "benchmark" / "results").glob("*.py")):
        for node in ast.parse(path.read_text(), str(path)).body:
            if isinstance(node, (ast.Assign, ast.AnnAssign)):
                assert not isinstance(node.value, (ast.Dict, ast.List, ast.Set)), f"{path.name}:{node.lineno}"
