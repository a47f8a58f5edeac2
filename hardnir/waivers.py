"""Waivers: accepted exceptions that turn a known, approved failure into ``waived``.

A waiver file is YAML with one top-level key, ``waivers``, holding a list of entries::

    waivers:
      - control: core-docker            # a control id (must be a known one)
        hosts: [lab-03]                 # and/or groups: [edge]; or `all: true`
        reason: "CI runners need docker"  # required, non-empty
        approver: "j.doe"               # optional
        expires: 2027-01-31             # optional ISO date; the waiver holds through that day

Each entry needs a scope: ``hosts`` (inventory names), ``groups`` (inventory groups), both, or ``all: true``
(which cannot be combined with the other two). Any other key is an error, so that a typo such as ``host:`` or
``expiry:`` cannot silently widen or lengthen a waiver. Every problem raises :class:`WaiverError` with a
one-line message naming the file, the entry (``waivers[i]``, 0-based) and the problem.

:func:`apply_waivers` gives every row the :data:`WAIVER_COLUMNS` (empty when no waiver matched) and only changes
``check``/``verify`` rows whose status is ``fail``: a matching unexpired waiver makes them ``waived``; a matching
expired one keeps ``fail``. Either way the waiver's reason, approver and expiry go into the columns, as data; the
message gets a short human note, which nothing parses back.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Final

import yaml

from hardnir.rows import clean_message, truncate
from hardnir.schema import MESSAGE_MAX_CHARS

ALLOWED_KEYS: Final[frozenset[str]] = frozenset(
    {"control", "hosts", "groups", "all", "reason", "approver", "expires"}
)
WAIVABLE_PHASES: Final[frozenset[str]] = frozenset({"check", "verify"})
#: Extra result columns (after ``host_key``): the matched waiver's reason, approver and expiry (ISO date).
WAIVER_COLUMNS: Final[tuple[str, ...]] = ("waiver_reason", "waiver_approver", "waiver_expires")


class _Loader(yaml.SafeLoader):
    """SafeLoader that leaves timestamps as text, so a bad date is reported by us with the entry index."""


def _timestamp_as_text(loader: _Loader, node: yaml.Node) -> object:
    """Construct a YAML timestamp scalar as its plain text."""
    return loader.construct_scalar(node) if isinstance(node, yaml.ScalarNode) else None


_Loader.add_constructor("tag:yaml.org,2002:timestamp", _timestamp_as_text)


class WaiverError(ValueError):
    """A waiver file is missing or invalid (one-line message: file, entry index, problem)."""


@dataclass(frozen=True)
class Waiver:
    """One accepted exception for a control on some hosts, optionally until a date."""

    control: str
    hosts: tuple[str, ...]
    groups: tuple[str, ...]
    all_hosts: bool
    reason: str
    approver: str | None
    expires: date | None

    def covers(self, control: str, host: str, groups: Collection[str]) -> bool:
        """Whether this waiver is about ``control`` and scopes ``host`` (by name, group or ``all``)."""
        if control != self.control:
            return False
        return self.all_hosts or host in self.hosts or any(g in self.groups for g in groups)

    def expired(self, today: date) -> bool:
        """Whether the waiver no longer holds on ``today`` (it still holds on its expiry day)."""
        return self.expires is not None and today > self.expires

    def describe(self) -> str:
        """``<reason> (approver <x>, expires <date>)``, leaving out the parts that are not set."""
        details = []
        if self.approver:
            details.append(f"approver {self.approver}")
        if self.expires:
            details.append(f"expires {self.expires.isoformat()}")
        return f"{self.reason} ({', '.join(details)})" if details else self.reason


# --------------------------------------------------------------------------------------------- loading


def _read_document(path: Path) -> object:
    """The parsed YAML of ``path``; WaiverError for a missing file or a syntax error (with its line)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise WaiverError(f"{path}: waiver file not found") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise WaiverError(f"{path}: cannot read waiver file: {_one_line(str(exc))}") from exc
    try:
        return yaml.load(text, Loader=_Loader)  # noqa: S506 - _Loader is a SafeLoader
    except yaml.MarkedYAMLError as exc:
        line = f"line {exc.problem_mark.line + 1}: " if exc.problem_mark else ""
        raise WaiverError(f"{path}: YAML syntax error at {line}{_one_line(str(exc.problem))}") from exc
    except yaml.YAMLError as exc:
        raise WaiverError(f"{path}: YAML syntax error: {_one_line(str(exc))}") from exc


def _one_line(text: str) -> str:
    """Collapse whitespace so an error message stays on one line."""
    return " ".join(text.split())


def _entries(path: Path, document: object) -> list[object]:
    """The ``waivers`` list of the document, checking the top-level shape."""
    if not isinstance(document, dict) or not isinstance(document.get("waivers"), list):
        raise WaiverError(f"{path}: top level must be a mapping with a 'waivers' list")
    unknown = sorted(str(key) for key in document if key != "waivers")
    if unknown:
        raise WaiverError(f"{path}: unknown top-level keys: {', '.join(map(repr, unknown))}")
    return list(document["waivers"])


class _EntryError(Exception):
    """A problem with one entry, before the file and index are known to the message."""


def _text(entry: Mapping[object, object], key: str, *, required: bool) -> str | None:
    """A non-empty string field of an entry (None when optional and absent)."""
    value = entry.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value.strip():
        raise _EntryError(f"{key!r} must be a non-empty string" if key in entry else f"missing {key!r}")
    return value.strip()


def _names(entry: Mapping[object, object], key: str) -> tuple[str, ...]:
    """A list of names (a single string is accepted as a one-item list)."""
    value = entry.get(key)
    if value is None:
        return ()
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(i, str) and i.strip() for i in items):
        raise _EntryError(f"{key!r} must be a list of non-empty names")
    return tuple(i.strip() for i in items)


def _expiry(entry: Mapping[object, object]) -> date | None:
    """The ``expires`` date: a YAML date or an ISO ``YYYY-MM-DD`` string."""
    value = entry.get("expires")
    if value is None:
        return None
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    if isinstance(value, str):
        try:
            return date.fromisoformat(value.strip())
        except ValueError:
            pass
    raise _EntryError(f"'expires' must be an ISO date (YYYY-MM-DD), got {value!r}")


def _control(entry: Mapping[object, object], known: Collection[str]) -> str:
    """The entry's control id, which must be one of ``known``."""
    control = _text(entry, "control", required=True)
    assert control is not None
    if control not in known:
        raise _EntryError(f"unknown control {control!r} (known: {', '.join(sorted(known))})")
    return control


def _scope(entry: Mapping[object, object]) -> tuple[tuple[str, ...], tuple[str, ...], bool]:
    """(hosts, groups, all_hosts) of an entry; it must name at least one and not mix ``all`` with names."""
    hosts, groups = _names(entry, "hosts"), _names(entry, "groups")
    all_hosts = entry.get("all", False)
    if not isinstance(all_hosts, bool):
        raise _EntryError("'all' must be true or false")
    if all_hosts and (hosts or groups):
        raise _EntryError("'all: true' cannot be combined with 'hosts' or 'groups'")
    if not (all_hosts or hosts or groups):
        raise _EntryError("no scope: give 'hosts', 'groups' or 'all: true'")
    return hosts, groups, all_hosts


def _parse_entry(entry: object, known: Collection[str]) -> Waiver:
    """One validated :class:`Waiver` from a YAML entry."""
    if not isinstance(entry, dict):
        raise _EntryError("entry must be a mapping")
    unknown = sorted(str(key) for key in entry if key not in ALLOWED_KEYS)
    if unknown:
        allowed = ", ".join(sorted(ALLOWED_KEYS))
        raise _EntryError(f"unknown keys: {', '.join(map(repr, unknown))} (allowed: {allowed})")
    control = _control(entry, known)
    hosts, groups, all_hosts = _scope(entry)
    reason = _text(entry, "reason", required=True)
    assert reason is not None
    return Waiver(
        control=control,
        hosts=hosts,
        groups=groups,
        all_hosts=all_hosts,
        reason=reason,
        approver=_text(entry, "approver", required=False),
        expires=_expiry(entry),
    )


def load_waivers(path: Path, known_controls: Collection[str]) -> list[Waiver]:
    """Read and validate a waiver file; any problem raises :class:`WaiverError`."""
    path = Path(path)
    waivers = []
    for index, entry in enumerate(_entries(path, _read_document(path))):
        try:
            waivers.append(_parse_entry(entry, known_controls))
        except _EntryError as exc:
            raise WaiverError(f"{path}: waivers[{index}]: {_one_line(str(exc))}") from None
    return waivers


# --------------------------------------------------------------------------------------------- applying


def _matching(
    waivers: Sequence[Waiver], control: str, host: str, groups: Collection[str]
) -> list[Waiver]:
    """The waivers that cover ``control`` on ``host``."""
    return [w for w in waivers if w.covers(control, host, groups)]


def _join(prefix: str, message: object) -> str:
    """``prefix`` followed by the original message (if any), as one clean line."""
    original = str(message or "")
    return clean_message(f"{prefix}; {original}" if original else prefix)


def _append(message: object, note: str) -> str:
    """The original message followed by ``; <note>``, shortening the message (not the note) to fit the cap."""
    original = clean_message(str(message or ""))
    if not original:
        return clean_message(note)
    suffix = clean_message(f"; {note}")
    return truncate(original, max(0, MESSAGE_MAX_CHARS - len(suffix))) + suffix


def waiver_cells(waiver: Waiver | None) -> dict[str, object]:
    """The :data:`WAIVER_COLUMNS` of a row that ``waiver`` matched (all empty for None)."""
    if waiver is None:
        return dict.fromkeys(WAIVER_COLUMNS, "")
    return {
        "waiver_reason": clean_message(waiver.reason),
        "waiver_approver": clean_message(waiver.approver or ""),
        "waiver_expires": waiver.expires.isoformat() if waiver.expires else "",
    }


def _waive(row: dict[str, object], matches: list[Waiver], today: date) -> None:
    """Apply the best matching waiver to a failing row, in place (or note its expiry)."""
    active = [w for w in matches if not w.expired(today)]
    if active:
        waiver = active[0]
        row["status"] = "waived"
        row["message"] = _join(f"waived: {waiver.describe()}", row.get("message"))
    else:
        waiver = max((w for w in matches if w.expires is not None), key=lambda w: w.expires or date.min)
        assert waiver.expires is not None
        row["message"] = _append(row.get("message"), f"waiver expired on {waiver.expires.isoformat()}")
    row.update(waiver_cells(waiver))


def waive_rows(
    rows: list[dict[str, object]],
    waivers: Sequence[Waiver],
    host_groups: Mapping[str, Collection[str]],
    today: date,
) -> None:
    """:func:`apply_waivers` in place: no second copy of a run's rows (the API's run keeps only the waived ones)."""
    empty = waiver_cells(None)
    for row in rows:
        if row.get("phase") in WAIVABLE_PHASES and row.get("status") == "fail":
            host, control = str(row.get("host")), str(row.get("control"))
            matches = _matching(waivers, control, host, host_groups.get(host, ()))
            if matches:
                _waive(row, matches, today)
                continue
        row.update(empty)


def apply_waivers(
    rows: list[dict[str, object]],
    waivers: Sequence[Waiver],
    host_groups: Mapping[str, Collection[str]],
    today: date,
) -> list[dict[str, object]]:
    """New rows, each with the :data:`WAIVER_COLUMNS`; failing check/verify results covered by a waiver become
    ``waived``.

    The first unexpired matching waiver (file order) wins. If only expired waivers match, the row stays ``fail``,
    its waiver columns name the one that expired last and its message ends with ``; waiver expired on <date>``.
    Rows are copied, never mutated, so the caller keeps the unwaived truth (:func:`waive_rows` changes them in
    place). With no waivers every row simply gets empty waiver columns, so runs with and without a waiver file
    have the same columns.
    """
    copies = [dict(row) for row in rows]
    waive_rows(copies, waivers, host_groups, today)
    return copies
