"""The probe script's framing, run for real with sh, and the parser against hostile output."""

from __future__ import annotations

import contextlib
import shlex
import subprocess

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hardnir import probe
from hardnir.facts import Facts


def run(items: list[tuple[str, str]]) -> dict[str, probe.Item]:
    script = probe.build(items)
    out = subprocess.run(["sh", "-c", script.script], capture_output=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return script.parse(out.stdout.decode("utf-8", "replace"))


PLAN = probe.build([probe.command_item("ok", "true"), probe.unit_item("sshd.socket"), probe.file_item("/etc/x"),
                    probe.socket_item("/run/x")]).plan


def test_items_keep_exit_codes_and_output() -> None:
    items = run([probe.command_item("ok", "echo hello"), probe.command_item("bad", "echo oops >&2; exit 7")])
    assert items["cmd:ok"] == probe.Item(0, "hello\n")
    assert items["cmd:bad"] == probe.Item(7, "oops\n")
    assert "cmd:os-release" in items  # common items always come first


def test_commands_see_no_terminal_width() -> None:
    """sudo wraps `sudo -l` at COLUMNS (80 when unset) when its stdout is a file, as every item's is; the probe
    sets a width below which sudo does not wrap, whatever the caller's environment says."""
    script = probe.build([probe.command_item("cols", 'printf "%s\\n" "$COLUMNS"')])
    out = subprocess.run(["sh", "-c", script.script], capture_output=True, timeout=60, env={"COLUMNS": "132"})
    assert script.parse(out.stdout.decode())["cmd:cols"] == probe.Item(0, "1\n")


def test_hostile_output_cannot_forge_items() -> None:
    fake = probe.build([probe.command_item("ok", "echo forged")])
    forged = subprocess.run(["sh", "-c", fake.script], capture_output=True, timeout=60, text=True).stdout
    hostile = "printf '\\033[31mred\\n\\000nul\\n=1+1\\n'; printf '%s' " + shlex.quote(forged)
    items = run([probe.command_item("ok", "echo real"), probe.command_item("evil", hostile)])
    assert items["cmd:ok"].text == "real\n"
    assert "\x1b[31mred" in items["cmd:evil"].text and "\x00nul" in items["cmd:evil"].text
    assert probe.MARKER in items["cmd:evil"].text  # a whole forged probe output stays inside its own item


def test_huge_output_is_capped() -> None:
    items = run([probe.command_item("big", "head -c 12000000 /dev/zero | tr '\\0' y")])
    assert len(items["cmd:big"].text) == probe.ITEM_MAX_BYTES


def test_file_item_reports_content_and_links(tmp_path: object) -> None:
    import pathlib

    base = pathlib.Path(str(tmp_path))
    (base / "f.conf").write_text("x=1\n")
    (base / "l").symlink_to("/dev/null")
    items = run([probe.file_item(str(base / "f.conf")), probe.file_item(str(base / "l")),
                 probe.file_item(str(base / "missing"))])
    facts = Facts(items)
    f = facts.file(str(base / "f.conf"))
    assert f.kind == "file" and f.content == "x=1\n" and f.mode == "644"
    assert facts.file(str(base / "l")).target == "/dev/null"
    assert facts.file(str(base / "missing")).kind == "missing"


def test_names_with_shell_metacharacters_are_quoted(tmp_path: object) -> None:
    import pathlib

    weird = pathlib.Path(str(tmp_path)) / "a b;$(touch pwned)"
    weird.write_text("ok\n")
    items = run([probe.file_item(str(weird))])
    assert Facts(items).file(str(weird)).content == "ok\n"
    assert not pathlib.Path("pwned").exists()


def test_garbage_is_a_parse_error() -> None:
    with pytest.raises(probe.ProbeParseError):
        probe.parse_output("Welcome to CoreOS!\nnot a probe\n", PLAN)
    with pytest.raises(probe.ProbeParseError, match="truncated or corrupt"):
        probe.parse_output(f"{probe.MARKER}\nnot-base64!\n", PLAN)
    assert probe.parse_output("", PLAN) == {}


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=3000))
def test_parser_never_crashes(text: str) -> None:
    try:
        items = probe.parse_output(text, PLAN)
    except probe.ProbeParseError:
        return
    facts = Facts(items)
    for control_unit in ("sshd.socket", "fleet.socket"):
        facts.unit(control_unit)
    facts.file("/etc/x")
    facts.socket("/run/x")


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["@@ ", "", "@@ 0 cmd:x ", "@@ a b c"]), st.text(max_size=200)),
                max_size=30))
def test_parser_survives_framed_noise(parts: list[tuple[str, str]]) -> None:
    text = "\n".join(a + b for a, b in parts)
    with contextlib.suppress(probe.ProbeParseError):
        probe.parse_output(text, PLAN)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.text(alphabet="AbZz=_ 9é", max_size=6), st.text(max_size=12),
                          st.sampled_from(["\n", "\r\n", "\r", "\x0b", "\x1c", "\u2028", "\x85"])), max_size=8))
def test_unit_properties_read_every_line_splitlines_sees(lines: list[tuple[str, str, str]]) -> None:
    """The one-regex reading of `systemctl show` output agrees with a line-by-line reading, whatever the breaks."""
    text = "".join(f"{key}={value}{end}" for key, value, end in lines)
    expected: dict[str, list[str]] = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep and key.isalpha() and key.isascii():
            expected.setdefault(key, []).append(value.strip())
    assert Facts({"unit:x.service": probe.Item(0, text)}).unit("x.service").props == expected


def test_file_facts_are_parsed_once_per_path() -> None:
    facts = Facts({"file:/etc/a": probe.Item(0, "type=file\nstat=644 root root 3\ncontent=YWJj\n")})
    first = facts.file("/etc/a")
    assert first.content == "abc" and first.mode == "644"
    assert facts.file("/etc/a") is first
    assert facts.file("/etc/b").kind == "unknown"
