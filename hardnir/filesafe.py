"""Escaping at the point of writing, and a re-parse of every planned file before it is written.

This is the second wall behind parameter validation (`hardnir.params`): whatever a value holds, a file hardnir
writes says only what the control meant it to say.

- `systemd_value` / `environment_line` render values for unit files per systemd.syntax(7): `%` becomes `%%`
  (specifiers), `Environment=` assignments are double-quoted with `\\` and `"` escaped; a newline or control
  character is refused, never escaped into the file.
- `config_word` renders one word for sudoers or sshd_config (escaped or quoted per dialect, or refused).
- Each control declares the shape of every file it writes (`SHAPES`: path -> shape). `vet_plan` re-parses every
  planned file against its shape and refuses the plan when a file holds anything else, such as an `Exec*=` line in
  a socket drop-in, or when the control declared no shape for the path.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")  # tab is allowed inside values, nothing else
_ENV_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_DIRECTIVE = re.compile(r"^([A-Za-z][A-Za-z0-9]*)=(.*)$")


class UnsafeValue(ValueError):
    """A value that cannot be written safely (newline, control character, or a character the dialect refuses)."""


def _one_line(value: str, where: str) -> str:
    if _CONTROL.search(value) or "\t" in value:
        raise UnsafeValue(f"{where}: {value[:40]!r} holds a newline or control character")
    return value


def systemd_value(value: str) -> str:
    """A plain unit-file value (e.g. ListenStream=): one line, `%` escaped, no trailing backslash."""
    _one_line(value, "unit file value")
    if value.endswith("\\"):
        raise UnsafeValue(f"unit file value {value!r} ends with a backslash (a line continuation)")
    return value.replace("%", "%%")


def environment_line(key: str, value: str) -> str:
    """`Environment="KEY=value"` with `\\`, `"` and `%` escaped (systemd.syntax(7) quoting, systemd.unit specifiers)."""
    if not _ENV_KEY.match(key):
        raise UnsafeValue(f"{key!r} is not an environment variable name")
    _one_line(value, f"Environment {key}")
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("%", "%%")
    return f'Environment="{key}={escaped}"\n'


def dropin(section: str, entries: Iterable[tuple[str, str]]) -> str:
    """A drop-in with one section; entries are (directive, value), values rendered with `systemd_value`.

    An empty value is written as a bare `Directive=` (a reset of a list setting)."""
    lines = [f"[{section}]\n"]
    for key, value in entries:
        if not _DIRECTIVE.match(f"{key}=x"):
            raise UnsafeValue(f"{key!r} is not a directive name")
        lines.append(f"{key}={systemd_value(value)}\n")
    return "".join(lines)


_SUDOERS_SPECIAL = set(",:=\\ ()!#\"'")


def config_word(value: str, dialect: str) -> str:
    """One word for a sudoers rule (special characters backslash-escaped) or an sshd_config value (quoted when
    it holds spaces; a double quote is refused)."""
    _one_line(value, f"{dialect} value")
    if not value:
        raise UnsafeValue(f"empty {dialect} value")
    if dialect == "sudoers":
        return "".join("\\" + c if c in _SUDOERS_SPECIAL else c for c in value)
    if dialect == "sshd_config":
        if '"' in value or value.endswith("\\"):
            raise UnsafeValue(f"sshd_config value {value!r} holds a double quote or trailing backslash")
        return f'"{value}"' if (" " in value or "#" in value) else value
    raise ValueError(f"unknown dialect {dialect!r}")


# ------------------------------------------------------------------ re-parsing planned files


def split_systemd_words(text: str) -> list[str]:
    """Split a value into words as systemd does for Environment=: double/single quotes and backslash escapes."""
    words: list[str] = []
    i, n = 0, len(text)
    while i < n:
        while i < n and text[i] in " \t":
            i += 1
        if i >= n:
            break
        word: list[str] = []
        quote = ""
        while i < n:
            c = text[i]
            if quote:
                if c == "\\" and i + 1 < n:
                    word.append(text[i + 1])
                    i += 2
                    continue
                if c == quote:
                    quote = ""
                else:
                    word.append(c)
            elif c in "\"'":
                quote = c
            elif c == "\\" and i + 1 < n:
                word.append(text[i + 1])
                i += 1
            elif c in " \t":
                break
            else:
                word.append(c)
            i += 1
        if quote:
            raise UnsafeValue(f"unterminated quote in {text!r}")
        words.append("".join(word))
    return words


def parse_unit(content: str) -> list[tuple[str, str, str]]:
    """(section, directive, value) of every assignment; refuses continuation lines and text outside a section."""
    out = []
    section = ""
    if _CONTROL.search(content.replace("\n", "")):
        raise UnsafeValue("NUL or control character in unit file")
    for number, line in enumerate(content.split("\n"), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith(("#", ";")):
            continue
        if stripped.endswith("\\"):
            raise UnsafeValue(f"line {number}: continuation line")
        if stripped.startswith("[") and stripped.endswith("]"):
            section = stripped[1:-1]
            continue
        match = _DIRECTIVE.match(stripped)
        if not match or not section:
            raise UnsafeValue(f"line {number}: not a directive in a section: {stripped[:60]!r}")
        out.append((section, match.group(1), match.group(2)))
    return out


class Shape(Protocol):
    def problems(self, content: str) -> list[str]: ...


@dataclass(frozen=True)
class DropinShape:
    """A unit drop-in: only these directives in this section; `Environment=` only for these variables."""

    section: str
    directives: frozenset[str]
    environment: frozenset[str] = frozenset()

    def problems(self, content: str) -> list[str]:
        try:
            entries = parse_unit(content)
        except UnsafeValue as exc:
            return [str(exc)]
        found = []
        for section, key, value in entries:
            if section != self.section:
                found.append(f"section [{section}] not expected")
            elif key not in self.directives:
                found.append(f"directive {key}= not expected")
            elif key == "Environment":
                try:
                    words = split_systemd_words(value)
                except UnsafeValue as exc:
                    found.append(str(exc))
                    continue
                names = [w.partition("=")[0] for w in words]
                found += [f"Environment variable {n} not expected" for n in names if n not in self.environment]
        return found


@dataclass(frozen=True)
class LinesShape:
    """A line-oriented file (sudoers, sysusers, update.conf): every non-comment line matches `pattern`."""

    pattern: str

    def problems(self, content: str) -> list[str]:
        if "\x00" in content or _CONTROL.search(content.replace("\n", "")):
            return ["NUL or control character"]
        rx = re.compile(self.pattern)
        return [
            f"line {n}: {line[:60]!r} not expected"
            for n, line in enumerate(content.splitlines(), start=1)
            if line.strip() and not line.lstrip().startswith("#") and not rx.fullmatch(line)
        ]


def shape_for(path: str, shapes: Mapping[str, Shape]) -> Shape | None:
    for pattern, shape in shapes.items():
        if fnmatch.fnmatchcase(path, pattern):
            return shape
    return None


def vet_files(files: Sequence[tuple[str, str]], shapes: Mapping[str, Shape]) -> str:
    """'' when every (path, content) has a declared shape and fits it; else the first refusal, one line."""
    for path, content in files:
        shape = shape_for(path, shapes)
        if shape is None:
            return f"refused: {path} is not a file this control declares"
        found = shape.problems(content)
        if found:
            return f"refused: the planned {path} does not re-parse as intended ({found[0]})"
    return ""
