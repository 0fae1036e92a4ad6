"""Config and setting validation with pydantic: its errors as cabench's one-line messages.

Why pydantic: it checks nested tables, lists, literals and numeric bounds from type annotations,
refuses coercion in strict mode (``"false"`` is not a boolean, ``true`` is not an integer, a string
is not a list), and reports every violation with its location, which becomes the key path that
names the culprit (``methods[2].settings.strength``; list indices count from 0). The schemas
themselves live with what they describe (:mod:`benchmark.config` for run configs, the adapters'
``__init__`` annotations for their settings); this module only words the errors.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

_EXPECTED = {
    "bool_type": "true or false",
    "int_type": "an integer",
    "float_type": "a number",
    "string_type": "a string",
    "list_type": "a list [...]",
    "tuple_type": "a list [...]",
    "dict_type": "a table { key = value }",
    "model_type": "a table",
    "model_attributes_type": "a table",
}


def key_path(loc: Sequence[str | int]) -> str:
    """``("methods", 2, "settings", "strength")`` -> ``methods[2].settings.strength``."""
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def shown(value: Any) -> str:
    """A value as it would be written in TOML, with its kind when that is the point (``"false"``, a string)."""
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, str):
        text = json.dumps(value) + " (a string)"
    elif isinstance(value, dict):
        text = "a table"
    elif isinstance(value, (list, tuple)):
        text = json.dumps(list(value), default=str)
    else:
        text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def describe(error: dict[str, Any]) -> str:
    """What one pydantic error expected, and what it got, in words."""
    kind, value, context = error["type"], error.get("input"), error.get("ctx") or {}
    if kind == "missing":
        return "required, not given"
    if kind == "extra_forbidden":
        return "unknown key"
    if kind == "value_error":
        return str(context.get("error", error["msg"]))
    if kind == "literal_error":
        return f"expected one of {context['expected']}, got {shown(value)}"
    if kind in ("greater_than_equal", "greater_than", "less_than_equal", "less_than"):
        bound = {"greater_than_equal": ">=", "greater_than": ">", "less_than_equal": "<=", "less_than": "<"}[kind]
        limit = next(iter(context.values()))
        return f"expected a value {bound} {limit}, got {shown(value)}"
    if kind == "too_short":
        return f"expected at least {context.get('min_length', 1)} entry, got none"
    if kind in ("list_type", "tuple_type") and isinstance(value, str):
        return f"expected a list, e.g. [{json.dumps(value)}], got {shown(value)}"
    if kind in ("list_type", "tuple_type") and isinstance(value, dict):
        return "expected an array of tables ([[...]] in TOML), got a single table"
    if kind in _EXPECTED:
        return f"expected {_EXPECTED[kind]}, got {shown(value)}"
    return f"{error['msg']}, got {shown(value)}"


def violations(errors: list[dict[str, Any]], prefix: Sequence[str | int] = ()) -> list[tuple[str, str]]:
    """(key path, what is wrong) for every pydantic error, each location under ``prefix``."""
    return [(key_path((*prefix, *error["loc"])), describe(error)) for error in errors]
