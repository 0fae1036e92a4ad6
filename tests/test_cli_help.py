"""Every option of every subcommand says what it does and, where it takes a value and is not
required, its default; every subcommand's --help renders; eval --protocol lists its choices."""

from __future__ import annotations

import argparse

from benchmark.cli import build_parser


def _subcommands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    return next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices


def test_every_option_has_a_description_and_its_default():
    problems = []
    for name, sub in _subcommands().items():
        formatter = sub._get_formatter()
        for action in sub._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            label = f"cabench {name} {'/'.join(action.option_strings) or action.dest}"
            if not action.help:
                problems.append(f"{label}: no help")
                continue
            text = formatter._expand_help(action)  # what --help prints (%(default)s filled in)
            takes_value = action.option_strings and action.nargs != 0 and not action.required
            if takes_value and "default" not in text:
                problems.append(f"{label}: help does not state the default ({text!r})")
        assert sub.format_help()
    assert not problems, "\n".join(problems)


def test_eval_protocol_lists_its_choices():
    """--protocol takes a comma list (no argparse choices), so its help names every registered protocol."""
    from metrics.protocols import PROTOCOLS

    help_text = _subcommands()["eval"]._option_string_actions["--protocol"].help
    assert [name for name in PROTOCOLS if name not in help_text] == []


def test_run_help_names_every_config_key():
    """The config's keys are listed in `cabench run --help`: a key added to the schema must be added there."""
    from benchmark.config import RUN_KEYS, DatasetConfig, MethodConfig

    help_text = " ".join(_subcommands()["run"].format_help().split())
    for table, keys in (("[run]", RUN_KEYS), ("[[datasets]]", DatasetConfig.model_fields),
                        ("[[methods]]", MethodConfig.model_fields)):
        assert table in help_text
        missing = [key for key in keys if key not in help_text]
        assert not missing, f"{table} keys absent from cabench run --help: {missing}"
