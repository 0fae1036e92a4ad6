"""The README cannot drift from the code: every Python block runs (on small synthetic inputs made
here), the TOML run config passes the config schema, and every ``cabench ...`` command (in shell
blocks and in inline code) names an existing subcommand, existing flags and, where the parser or
the metric registry knows them, existing values.

A block that cannot run here is opted out by the line just before its fence,
``<!-- readme-test: skip REASON -->`` (an HTML comment, invisible when rendered); the reason is
required.
"""

from __future__ import annotations

import argparse
import re
import shlex
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
import tomllib

from benchmark.cli import build_parser

README = Path(__file__).resolve().parents[1] / "README.md"
SKIP = re.compile(r"<!--\s*readme-test:\s*skip\b(.*?)-->")
SEPARATORS = {"&&", "||", ";", "|"}


@dataclass(frozen=True)
class Block:
    language: str
    text: str
    line: int           # line of the opening fence (1-based)
    skip_reason: str | None


def readme_blocks(text: str) -> list[Block]:
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
    assert start is None, f"README.md:{start + 1}: a code block is never closed"
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


# ---------------------------------------------------------------------------- the README itself


@pytest.fixture(scope="module")
def text() -> str:
    return README.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def blocks(text) -> list[Block]:
    return readme_blocks(text)


def test_every_opt_out_gives_its_reason(text, blocks):
    for number, line in enumerate(text.splitlines(), 1):
        marker = SKIP.search(line)
        if marker:
            assert marker.group(1).strip(), f"README.md:{number}: a readme-test skip marker needs its reason"
    assert any(b.language == "python" for b in blocks) and any(b.language == "bash" for b in blocks)


def test_every_cabench_command_names_existing_subcommands_flags_and_values(text, blocks):
    parser = build_parser()
    commands = [(f"inline `{' '.join(c)}`", c) for c in inline_commands(text)]
    for block in blocks:
        if block.language in ("bash", "sh", "console", "") and block.skip_reason is None:
            commands += [(f"README.md:{block.line}", c) for c in shell_commands(block.text)]
    cabench = [(where, words) for where, words in commands if words[0] == "cabench"]
    assert len(cabench) >= 10  # the README documents the CLI: its commands are found and checked
    problems = [f"{where}: {' '.join(words)}: {problem}" for where, words in cabench
                for problem in command_problems(words, parser)]
    assert not problems, "\n".join(problems)


def test_the_checker_notices_drift():
    """The checks above can fail: a renamed flag, subcommand, choice or metric is reported."""
    parser = build_parser()
    assert command_problems(["cabench", "tables", "--run", "R", "--ci", "bounds", "--per-sequence"], parser) == []
    assert command_problems(["cabench", "tables", "--run", "R", "--cis"], parser) == ["tables: no option --cis"]
    assert command_problems(["cabench", "table"], parser)[0].startswith("no subcommand 'table'")
    assert command_problems(["cabench", "tables", "--ci", "sd"], parser)[0].startswith("--ci sd: not one of")
    assert command_problems(["cabench", "train", "vae|stage9", "--data", "D"], parser)[0].startswith("train stage9")
    assert command_problems(["cabench", "eval", "--metrics", "l2,psnrr"], parser) == ["--metrics: no metric 'psnrr'"]
    assert shell_commands("cabench eval --gt G \\\n    --pred a=P  # note\npip install x && cabench demo") == [
        ["cabench", "eval", "--gt", "G", "--pred", "a=P"], ["pip", "install", "x"], ["cabench", "demo"]]
    found = readme_blocks("a\n<!-- readme-test: skip needs a GPU -->\n```bash\ncabench x\n```\n")
    assert found == [Block("bash", "cabench x", 3, "needs a GPU")]


def test_the_run_config_passes_the_schema(blocks, tmp_path):
    from benchmark.config import parse_config

    configs = [b for b in blocks if b.language == "toml" and b.skip_reason is None]
    assert configs
    for block in configs:
        config = parse_config(tomllib.loads(block.text), base=tmp_path, source=f"README.md:{block.line}")
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


def test_every_python_block_runs(blocks, tmp_path, monkeypatch):
    from reports.pytest_plugin import QualityRegression

    python = [b for b in blocks if b.language == "python"]
    assert python
    _synthetic_inputs(tmp_path)
    monkeypatch.chdir(tmp_path)
    tested: set[str] = set()
    namespace = {"__name__": "readme", "run_my_evaluation": _summary}  # shared: the README reads top to bottom
    for block in python:
        if block.skip_reason is not None:
            continue
        namespace.pop("result", None)
        exec(compile(block.text, f"README.md:{block.line}", "exec"), namespace)
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
