"""The README and the pages of ``docs/`` cannot drift from the code: in each page, every Python block
runs (on small synthetic inputs made here; the blocks of one page share a namespace, in order), every
TOML run config passes the config schema, every ``cabench ...`` command (in shell blocks and in inline
code) names an existing subcommand, existing flags and, where the parser or the metric registry knows
them, existing values, and every relative link names an existing file (and heading).

Every ``docs/*.md`` is checked, including pages added later.

A block that cannot run here is opted out by the line just before its fence,
``<!-- readme-test: skip REASON -->`` (an HTML comment, invisible when rendered); the reason is
required.
"""

from __future__ import annotations

import argparse
import re
import shlex
import tomllib
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

from benchmark.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
PAGES = [README, *sorted((ROOT / "docs").glob("*.md"))]
SKIP = re.compile(r"<!--\s*readme-test:\s*skip\b(.*?)-->")
SEPARATORS = {"&&", "||", ";", "|"}


@dataclass(frozen=True)
class Block:
    language: str
    text: str
    line: int           # line of the opening fence (1-based)
    skip_reason: str | None


def readme_blocks(text: str, name: str = "README.md") -> list[Block]:
    """The fenced code blocks of ``text``, with the opt-out marker of the line before each fence."""
    lines = text.splitlines()
    blocks, start, language = [], None, ""
    for number, line in enumerate(lines):
        if not line.startswith("```"):
            continue
        if start is None:
            start, language = number, line[3:].strip()
            continue
        marker = SKIP.search(lines[start - 1]) if start else None
        blocks.append(Block(language, "\n".join(lines[start + 1:number]), start + 1,
                            marker.group(1).strip() if marker else None))
        start = None
    assert start is None, f"{name}:{start + 1}: a code block is never closed"
    return blocks


def shell_commands(block: str) -> list[list[str]]:
    """The commands of a shell block (continuations joined, comments dropped, split at && ; | ||)."""
    commands = []
    for line in block.replace("\\\n", " ").splitlines():
        words, current = shlex.split(line, comments=True), []
        for word in words:
            if word in SEPARATORS:
                commands.append(current)
                current = []
            else:
                current.append(word)
        commands.append(current)
    return [c for c in commands if c]


def inline_commands(text: str) -> list[list[str]]:
    """``cabench ...`` in inline code spans (not the error format ``cabench: error: ...``)."""
    return [shlex.split(span) for span in re.findall(r"(?<!`)`(cabench [^`]+)`(?!`)", text)]


def _alternatives(word: str) -> list[str]:
    """``[--compile]`` -> ``--compile``; ``vae|stage2`` -> both; ``--flag=value`` -> the flag."""
    return [w for w in word.strip("[]").split("|") if w]


def _placeholder(word: str) -> bool:
    """An upper-case stand-in such as DIR, CONFIG.toml, GT or BEST (any value goes)."""
    return bool(re.fullmatch(r"[A-Z][A-Z0-9_]*(\.[a-z]+)?(=\S+)?", word))


def _check_value(flag: str, action: argparse.Action, value: str) -> list[str]:
    from metrics import registry

    problems = []
    for choice in _alternatives(value):
        if _placeholder(choice):
            continue
        if action.choices is not None and choice not in action.choices:
            problems.append(f"{flag} {choice}: not one of {', '.join(map(str, action.choices))}")
        if flag == "--metrics":
            known = set(registry.list_metrics())
            problems += [f"--metrics: no metric {name!r}" for name in choice.split(",") if name not in known]
    return problems


def command_problems(words: list[str], parser: argparse.ArgumentParser) -> list[str]:
    """What in ``cabench SUBCOMMAND ...`` the parser does not know (empty when everything exists)."""
    subcommands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices
    if len(words) < 2:
        return []
    if words[1] not in subcommands:
        return [f"no subcommand {words[1]!r} (known: {', '.join(subcommands)})"]
    sub = subcommands[words[1]]
    problems = []
    positionals = [a for a in sub._actions if not a.option_strings and a.choices is not None]
    rest = words[2:]
    if positionals and rest and not rest[0].startswith("-"):
        problems += [f"{words[1]} {w}: not one of {', '.join(positionals[0].choices)}"
                     for w in _alternatives(rest[0]) if not _placeholder(w) and w not in positionals[0].choices]
    for index, word in enumerate(rest):
        for flag in _alternatives(word):
            if not flag.startswith("-"):
                continue
            name, _, inline_value = flag.partition("=")
            action = sub._option_string_actions.get(name)
            if action is None:
                problems.append(f"{words[1]}: no option {name}")
                continue
            following = rest[index + 1] if index + 1 < len(rest) else ""
            value = inline_value or (following if action.nargs != 0 and not following.startswith("-") else "")
            if value:
                problems += _check_value(name, action, value)
    return problems


# ---------------------------------------------------------------------------- the README and docs/*.md


def _name(path: Path) -> str:
    return str(path.relative_to(ROOT))


@pytest.fixture(scope="module", params=PAGES, ids=_name)
def page(request) -> Path:
    return request.param


@pytest.fixture(scope="module")
def text(page) -> str:
    return page.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def blocks(page, text) -> list[Block]:
    return readme_blocks(text, _name(page))


def test_the_docs_are_found():
    assert len(PAGES) > 1 and all(p.suffix == ".md" for p in PAGES)
    assert len(README.read_text(encoding="utf-8").splitlines()) <= 250  # the README is a guide; the rest is in docs/


def test_every_opt_out_gives_its_reason(page, text, blocks):
    for number, line in enumerate(text.splitlines(), 1):
        marker = SKIP.search(line)
        if marker:
            assert marker.group(1).strip(), f"{_name(page)}:{number}: a readme-test skip marker needs its reason"
    if page == README:
        assert any(b.language == "python" for b in blocks) and any(b.language == "bash" for b in blocks)


def test_every_cabench_command_names_existing_subcommands_flags_and_values(page, text, blocks):
    parser = build_parser()
    commands = [(f"{_name(page)}: inline `{' '.join(c)}`", c) for c in inline_commands(text)]
    for block in blocks:
        if block.language in ("bash", "sh", "console", "") and block.skip_reason is None:
            commands += [(f"{_name(page)}:{block.line}", c) for c in shell_commands(block.text)]
    cabench = [(where, words) for where, words in commands if words[0] == "cabench"]
    if page == README:
        assert len(cabench) >= 10  # the README documents the CLI: its commands are found and checked
    problems = [f"{where}: {' '.join(words)}: {problem}" for where, words in cabench
                for problem in command_problems(words, parser)]
    assert not problems, "\n".join(problems)


def github_anchor(heading: str) -> str:
    """GitHub's anchor of a Markdown heading: lower case, punctuation but ``-`` and ``_`` dropped, spaces to ``-``."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def _anchors(text: str) -> set[str]:
    body = re.sub(r"^```.*?^```", "", text, flags=re.M | re.S)
    return {github_anchor(h) for h in re.findall(r"^#+ (.+)$", body, flags=re.M)}


def test_every_relative_link_names_an_existing_file_and_heading(page, text):
    problems = []
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"[a-z]+:", target):
            continue  # an absolute URL
        file, _, anchor = target.partition("#")
        path = (page.parent / file).resolve() if file else page
        if not path.exists():
            problems.append(f"{_name(page)}: link {target}: no file {file}")
        elif anchor and path.suffix == ".md" and anchor not in _anchors(path.read_text(encoding="utf-8")):
            problems.append(f"{_name(page)}: link {target}: no heading #{anchor} in {_name(path)}")
    assert not problems, "\n".join(problems)


def test_the_link_checker_notices_drift():
    assert github_anchor("Weights: `cabench weights`") == "weights-cabench-weights"
    assert github_anchor("Image metrics (L2, PSNR, SSIM)") == "image-metrics-l2-psnr-ssim"
    assert _anchors("# A b\n```\n# not a heading\n```\n## C: `d`\n") == {"a-b", "c-d"}


def test_the_run_config_passes_the_schema(page, blocks, tmp_path):
    from benchmark.engine.methods import open_config

    configs = [b for b in blocks if b.language == "toml" and b.skip_reason is None]
    assert configs or page != README
    for block in configs:
        config, _ = open_config(tomllib.loads(block.text), base=tmp_path, source=f"{_name(page)}:{block.line}")
        assert config.datasets and config.methods


def _synthetic_inputs(folder: Path, frames: int = 4, size: int = 48) -> None:
    """``gt_frames/`` (PNG) and ``ours.mp4`` (the same frames, shifted and noisy), as the README names them."""
    rng = np.random.default_rng(0)
    truth = rng.integers(0, 256, (frames, size, size, 3), dtype=np.uint8)
    (folder / "gt_frames").mkdir()
    for index, frame in enumerate(truth):
        cv2.imwrite(str(folder / "gt_frames" / f"{index:05d}.png"), frame)
    writer = cv2.VideoWriter(str(folder / "ours.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), 25, (size, size))
    for frame in truth:
        writer.write(np.clip(np.roll(frame, 1, axis=1).astype(int) + rng.integers(-8, 9, frame.shape), 0, 255)
                     .astype(np.uint8))
    writer.release()


def _summary() -> pd.DataFrame:
    from benchmark.results.bootstrap import BootstrapSettings
    from benchmark.results.summary import summarize

    rng = np.random.default_rng(1)
    per_frame = pd.DataFrame({"dataset": "d", "sequence": "s", "method": "m", "frame": range(12), "protocol": "canonical",
                              "psnr": 30 + rng.normal(0, 0.2, 12), "ssim": 0.9 + rng.normal(0, 0.01, 12)})
    return summarize(per_frame, bootstrap=BootstrapSettings(resamples=50))


def test_every_python_block_runs(page, blocks, tmp_path, monkeypatch):
    from reports.pytest_plugin import QualityRegression

    python = [b for b in blocks if b.language == "python"]
    assert python or page != README
    _synthetic_inputs(tmp_path)
    monkeypatch.chdir(tmp_path)
    tested: set[str] = set()
    namespace = {"__name__": "readme", "run_my_evaluation": _summary}  # shared: a page reads top to bottom
    for block in python:
        if block.skip_reason is not None:
            continue
        namespace.pop("result", None)
        exec(compile(block.text, f"{_name(page)}:{block.line}", "exec"), namespace)
        for name, function in list(namespace.items()):  # a block that defines tests: run them, record then compare
            if name.startswith("test_") and callable(function) and name not in tested:
                tested.add(name)
                path = tmp_path / "quality" / f"{name}.json"
                function(quality_regression=QualityRegression(path, update=True))
                function(quality_regression=QualityRegression(path, update=False))
                assert path.is_file()
        result = namespace.get("result")
        if result is not None:  # the API example: one row per frame of the synthetic inputs, in order
            assert list(result.frames["frame"]) == [0, 1, 2, 3]
            assert result.frames["psnr"].between(5, 60).all()
