"""Redaction: every secret of the inventory replaced by ``***`` in cells and metadata before anything is written."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from typing import Final

from hardnir.rows import neutralise_controls
from hardnir.schema import Row

REDACTED: Final[str] = "***"


def _secret_forms(secrets: Iterable[str]) -> list[str]:
    """Each secret as written raw, inside JSON and after control neutralisation; longest first."""
    forms: set[str] = set()
    for secret in secrets:
        if secret:
            in_json = json.dumps(secret, ensure_ascii=False)[1:-1]
            forms.update((secret, in_json, neutralise_controls(secret), neutralise_controls(in_json)))
    return sorted(forms, key=lambda s: (-len(s), s))


def redactor(secrets: Iterable[str]) -> re.Pattern[str] | None:
    """One regex matching any form of any secret (longest first so overlapping secrets vanish whole)."""
    forms = _secret_forms(secrets)
    return re.compile("|".join(map(re.escape, forms))) if forms else None


def redact(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every non-empty secret replaced by ``***``."""
    pattern = redactor(secrets)
    return pattern.sub(REDACTED, text) if pattern else text


def redact_tree(value: object, pattern: re.Pattern[str] | None) -> object:
    """Redact every string inside a JSON-like tree (dict keys included)."""
    if pattern is None:
        return value
    if isinstance(value, str):
        return pattern.sub(REDACTED, value)
    if isinstance(value, Mapping):
        return {redact_tree(k, pattern): redact_tree(v, pattern) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact_tree(item, pattern) for item in value]
    return value


def safe_row(row: Mapping[str, object], pattern: re.Pattern[str] | None) -> Row:
    """A copy of ``row`` whose strings are redacted and free of control characters."""
    out: Row = {}
    for key, value in row.items():
        if isinstance(value, str):
            value = neutralise_controls(pattern.sub(REDACTED, value) if pattern else value)
        out[key] = value
    return out
