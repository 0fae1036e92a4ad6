"""File-system names for dataset, sequence, method and protocol names.

A name from a config or the command line becomes one path component under the run folder, and
can never address anything outside it: characters other than ``A-Z a-z 0-9 . _ -`` become ``_``,
leading and trailing dots and underscores are dropped (so ``..``, ``.`` and hidden names such as
``.cabench`` cannot be formed), and the result is cut to :data:`MAX_LENGTH` characters. A name
that had to change gets a hash of the original appended, so two different names never share a
folder (``w/o LCM`` -> ``w_o_LCM-<hash>``, distinct from a method really called ``w_o_LCM``).
"""

from __future__ import annotations

import hashlib
import re

MAX_LENGTH = 80


def safe_name(name: str) -> str:
    """A readable, unique, single path component for ``name`` (see the module docstring)."""
    text = re.sub(r"[^A-Za-z0-9._-]+", "_", str(name)).strip("._")[:MAX_LENGTH] or "_"
    if text == name:
        return text
    return f"{text}-{hashlib.sha1(str(name).encode()).hexdigest()[:8]}"
