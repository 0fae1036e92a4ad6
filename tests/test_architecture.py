"""The import graph (data flows datasets -> adapters -> metrics -> results -> reports) and no side channels.

Read from the source with ``ast``, function-level imports included, so a lazy import counts too; the
lazy registries' ``register_lazy(name, "module:attribute")`` targets count as imports of their module.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("metrics", "reference", "baselines", "benchmark", "reports")


def _imported_names(path: Path) -> set[str]:
    """The dotted names a file imports (at any level), and the targets of its ``register_lazy`` calls."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names |= {node.module} | {f"{node.module}.{alias.name}" for alias in node.names}
        elif (isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "register_lazy"
              and len(node.args) == 2 and isinstance(node.args[1], ast.Constant)):
            names.add(str(node.args[1].value).partition(":")[0])
    return names


def _imports(package: str) -> dict[str, set[str]]:
    """{module file: the project modules it imports} for every module of ``package``."""
    return {str(path.relative_to(ROOT)): {n for n in _imported_names(path) if n.split(".")[0] in PACKAGES}
            for path in sorted((ROOT / package).rglob("*.py"))}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """{module: the project modules it imports} over every package: imports at any level of a file, and
    the targets of ``register_lazy`` calls (a registry's hidden edges made visible)."""
    files = {_module_name(path): path for package in PACKAGES for path in sorted((ROOT / package).rglob("*.py"))}

    def module_of(name: str) -> str | None:
        while name and name not in files:
            name = name.rpartition(".")[0]
        return name or None

    return {module: {m for m in map(module_of, _imported_names(path)) if m is not None and m != module}
            for module, path in files.items()}


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected groups of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for other in sorted(graph.get(node, ())):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            group = []
            while True:
                group.append(stack.pop())
                if group[-1] == node:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_no_import_circle_between_files():
    graph = import_graph()
    assert "baselines.consistentavatar" in graph["baselines.catalogue"]  # the catalogue's lazy targets are edges
    assert circles(graph) == []


def test_the_circle_finder_finds_circles():
    assert circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert circles({"a": {"b"}, "b": set()}) == []


def test_the_adapters_reach_the_reference_pipeline_by_a_visible_import():
    """No ``importlib`` side channel: the ConsistentAvatar adapter's (lazy) import of ``reference`` is
    an edge of the graph, and only the registry machinery imports modules by name."""
    assert "reference" in import_graph()["baselines.consistentavatar"]
    by_name = [f"{path.relative_to(ROOT)}" for package in PACKAGES for path in sorted((ROOT / package).rglob("*.py"))
               if re.search(r"import_module\(", path.read_text())]
    assert set(by_name) <= {"benchmark/cli.py", "benchmark/commands/weights.py", "metrics/__init__.py", "metrics/lazy.py"}


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


def test_only_the_commands_import_the_reports():
    """The engine hands plain values to a publisher the command gives it; nothing else in ``benchmark``
    reaches up into ``reports``."""
    offending = {module: names for module, names in _offending("benchmark", lambda n: not n.startswith("reports")).items()
                 if not module.startswith("benchmark/commands/")}
    assert offending == {}


def test_the_config_imports_no_adapter():
    """The config is a schema: the engine checks, resolves and builds the adapters (benchmark.engine.methods)."""
    assert {n for n in _imports("benchmark")["benchmark/config.py"] if n.startswith("baselines")} == set()


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
