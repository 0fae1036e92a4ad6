"""Reading a calibration table of ``tests/calibration`` (a CSV named by its manifest) grouped by case."""

from __future__ import annotations

import csv
import json
from collections import defaultdict

from calibration_recipe import TABLE


def manifest(name: str) -> dict:
    """``tests/calibration/<name>.json``."""
    return json.loads((TABLE / f"{name}.json").read_text())


def rows_by_case(entry: dict) -> dict[str, list[dict]]:
    """The rows of the table ``entry["table"]`` names, grouped by their ``case``, in file order."""
    rows = defaultdict(list)
    with open(TABLE / entry["table"], newline="") as handle:
        for row in csv.DictReader(handle):
            rows[row["case"]].append(row)
    return dict(rows)
