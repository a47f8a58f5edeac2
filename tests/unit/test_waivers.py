"""Unit tests for hardnir.waivers: loading (every rejection) and applying waivers to rows."""

from __future__ import annotations

import copy
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from hardnir.results import make_row
from hardnir.schema import MESSAGE_MAX_CHARS
from hardnir.waivers import WAIVER_COLUMNS, Waiver, WaiverError, apply_waivers, load_waivers, waive_rows

KNOWN = ["core-docker", "core-wheel", "sshd-socket"]
TODAY = date(2026, 6, 1)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "waivers.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def row(**overrides: object) -> dict[str, object]:
    fields: dict[str, object] = {
        "run_id": "r1",
        "runbook": "audit",
        "host": "lab-03",
        "control": "core-docker",
        "phase": "check",
        "status": "fail",
        "severity": "high",
        "message": "core is in docker",
        "started_at": datetime(2026, 6, 1, tzinfo=UTC),
        "duration_s": 0.1,
    }
    fields.update(overrides)
    return make_row(**fields)  # type: ignore[arg-type]


def waiver(**overrides: object) -> Waiver:
    fields: dict[str, object] = {
        "control": "core-docker",
        "hosts": ("lab-03",),
        "groups": (),
        "all_hosts": False,
        "reason": "CI runners need docker",
        "approver": "j.doe",
        "expires": date(2027, 1, 31),
    }
    fields.update(overrides)
    return Waiver(**fields)  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------------ loading


def test_load_full_example(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
waivers:
  - control: core-docker          # a control id
    hosts: [lab-03]
    reason: "CI runners need docker"
    approver: "j.doe"
    expires: 2027-01-31
  - control: core-wheel
    groups: [edge, lab]
    hosts: lab-01
    reason: break-glass
    expires: "2026-12-01"
  - control: sshd-socket
    all: true
    reason: console-only fleet
""",
    )
    got = load_waivers(path, KNOWN)
    assert got == [
        Waiver("core-docker", ("lab-03",), (), False, "CI runners need docker", "j.doe", date(2027, 1, 31)),
        Waiver("core-wheel", ("lab-01",), ("edge", "lab"), False, "break-glass", None, date(2026, 12, 1)),
        Waiver("sshd-socket", (), (), True, "console-only fleet", None, None),
    ]


def test_empty_list_is_fine(tmp_path: Path) -> None:
    assert load_waivers(write(tmp_path, "waivers: []\n"), KNOWN) == []


def test_waiver_is_frozen() -> None:
    with pytest.raises(AttributeError):
        waiver().reason = "x"  # type: ignore[misc]


ENTRY = "waivers:\n  - control: core-docker\n    hosts: [a]\n    reason: r\n"

REJECTIONS = [
    pytest.param(
        "waivers:\n  - control: core-docker\n    reason: @bad\n", "syntax error at line 3", id="yaml-syntax"
    ),
    pytest.param("", "top level", id="empty-file"),
    pytest.param("- control: core-docker\n", "top level", id="top-level-list"),
    pytest.param("rules: []\n", "top level", id="no-waivers-key"),
    pytest.param("waivers: {control: core-docker}\n", "top level", id="waivers-not-list"),
    pytest.param(ENTRY + "version: 2\n", "unknown top-level keys: 'version'", id="unknown-top-key"),
    pytest.param(
        "waivers:\n  - core-docker\n", "waivers[0]: entry must be a mapping", id="entry-not-mapping"
    ),
    pytest.param(
        ENTRY.replace("core-docker", "core-dockr"),
        "waivers[0]: unknown control 'core-dockr' (known: core-docker, core-wheel, sshd-socket)",
        id="unknown-control",
    ),
    pytest.param(ENTRY.replace("control: core-docker", "hosts: [b]"), "missing 'control'", id="no-control"),
    pytest.param(ENTRY.replace("    reason: r\n", ""), "waivers[0]: missing 'reason'", id="missing-reason"),
    pytest.param(
        ENTRY.replace("reason: r", "reason: '  '"), "'reason' must be a non-empty", id="blank-reason"
    ),
    pytest.param(
        ENTRY.replace("reason: r", "reason: 42"), "'reason' must be a non-empty", id="reason-not-text"
    ),
    pytest.param(ENTRY + "    expires: 2027-02-30\n", "'expires' must be an ISO date", id="bad-date-yaml"),
    pytest.param(ENTRY + "    expires: next year\n", "'expires' must be an ISO date", id="bad-date-text"),
    pytest.param(
        ENTRY + "    expires: 2027-01-31 10:00:00\n", "'expires' must be an ISO date", id="datetime"
    ),
    pytest.param(ENTRY.replace("    hosts: [a]\n", ""), "no scope", id="no-scope"),
    pytest.param(ENTRY.replace("hosts: [a]", "hosts: []"), "no scope", id="empty-hosts"),
    pytest.param(ENTRY.replace("hosts: [a]", "all: false"), "no scope", id="all-false"),
    pytest.param(ENTRY + "    all: true\n", "cannot be combined", id="all-and-hosts"),
    pytest.param(
        ENTRY.replace("hosts: [a]", "all: yes please"), "'all' must be true or false", id="all-not-bool"
    ),
    pytest.param(ENTRY.replace("hosts: [a]", "hosts: [a, 3]"), "'hosts' must be a list", id="host-not-text"),
    pytest.param(
        ENTRY.replace("hosts: [a]", "groups: {a: 1}"), "'groups' must be a list", id="groups-mapping"
    ),
    pytest.param(
        ENTRY + "    host: lab-03\n    expiry: 2027-01-01\n",
        "waivers[0]: unknown keys: 'expiry', 'host'",
        id="unknown-keys",
    ),
    pytest.param(
        ENTRY + "  - control: core-wheel\n    hosts: [b]\n", "waivers[1]: missing 'reason'", id="second-entry"
    ),
    pytest.param(ENTRY + "    approver: ''\n", "'approver' must be a non-empty", id="blank-approver"),
]


@pytest.mark.parametrize(("text", "problem"), REJECTIONS)
def test_rejections_are_one_line_and_name_file(tmp_path: Path, text: str, problem: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(WaiverError) as err:
        load_waivers(path, KNOWN)
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith(f"{path}: ")
    assert problem in message


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(WaiverError) as err:
        load_waivers(tmp_path / "nope.yaml", KNOWN)
    assert str(err.value) == f"{tmp_path / 'nope.yaml'}: waiver file not found"


def test_waiver_error_is_value_error() -> None:
    assert issubclass(WaiverError, ValueError)


def test_newline_in_value_keeps_message_one_line(tmp_path: Path) -> None:
    path = write(tmp_path, ENTRY.replace("core-docker", '"core\\ndocker"'))
    with pytest.raises(WaiverError) as err:
        load_waivers(path, KNOWN)
    assert "\n" not in str(err.value)


# ------------------------------------------------------------------------------------------ applying


def test_host_scope_waives_fail() -> None:
    rows = [row(), row(host="lab-04")]
    out = apply_waivers(rows, [waiver()], {}, TODAY)
    assert out[0]["status"] == "waived"
    assert out[0]["message"] == (
        "waived: CI runners need docker (approver j.doe, expires 2027-01-31); core is in docker"
    )
    assert (out[0]["waiver_reason"], out[0]["waiver_approver"], out[0]["waiver_expires"]) == (
        "CI runners need docker", "j.doe", "2027-01-31")
    assert out[1]["status"] == "fail"
    assert out[1] == {**rows[1], **dict.fromkeys(WAIVER_COLUMNS, "")}


def test_group_scope() -> None:
    w = waiver(hosts=(), groups=("ci",))
    out = apply_waivers(
        [row(host="a"), row(host="b"), row(host="c")], [w], {"a": ["ci", "x"], "b": ["x"]}, TODAY
    )
    assert [r["status"] for r in out] == ["waived", "fail", "fail"]


def test_all_scope() -> None:
    w = waiver(hosts=(), all_hosts=True, approver=None, expires=None)
    out = apply_waivers([row(host="a"), row(host="z", phase="verify")], [w], {}, TODAY)
    assert [r["status"] for r in out] == ["waived", "waived"]
    assert out[0]["message"] == "waived: CI runners need docker; core is in docker"


def test_other_control_not_waived() -> None:
    out = apply_waivers([row(control="core-wheel")], [waiver()], {}, TODAY)
    assert out[0]["status"] == "fail"


@pytest.mark.parametrize(
    ("phase", "status"),
    [
        ("check", "pass"),
        ("check", "error"),
        ("check", "not_applicable"),
        ("fix", "fix_failed"),
        ("rollback", "rollback_failed"),
    ],
)
def test_only_failing_check_and_verify_rows(phase: str, status: str) -> None:
    rows = [row(phase=phase, status=status)]
    assert apply_waivers(rows, [waiver(all_hosts=True, hosts=())], {}, TODAY) == [
        {**rows[0], **dict.fromkeys(WAIVER_COLUMNS, "")}]


def test_expired_waiver_keeps_fail_and_says_so() -> None:
    out = apply_waivers([row()], [waiver(expires=date(2026, 5, 31))], {}, TODAY)
    assert out[0]["status"] == "fail"
    assert out[0]["message"] == "core is in docker; waiver expired on 2026-05-31"


def test_expiry_day_still_valid() -> None:
    out = apply_waivers([row()], [waiver(expires=TODAY)], {}, TODAY)
    assert out[0]["status"] == "waived"


def test_unexpired_wins_over_expired() -> None:
    old = waiver(expires=date(2025, 1, 1), reason="old")
    new = waiver(expires=date(2027, 1, 1), reason="new")
    out = apply_waivers([row()], [old, new], {}, TODAY)
    assert out[0]["status"] == "waived"
    assert str(out[0]["message"]).startswith("waived: new ")


def test_first_active_waiver_wins() -> None:
    out = apply_waivers([row()], [waiver(reason="first"), waiver(reason="second")], {}, TODAY)
    assert str(out[0]["message"]).startswith("waived: first ")


def test_latest_expiry_reported_when_all_expired() -> None:
    ws = [waiver(expires=date(2025, 1, 1)), waiver(expires=date(2026, 1, 1))]
    out = apply_waivers([row()], ws, {}, TODAY)
    assert str(out[0]["message"]).endswith("waiver expired on 2026-01-01")


def test_does_not_mutate_input() -> None:
    rows = [row(), row(status="pass")]
    before = copy.deepcopy(rows)
    out = apply_waivers(rows, [waiver()], {}, TODAY)
    assert rows == before
    assert all(a is not b for a, b in zip(rows, out, strict=True))


def test_waive_rows_changes_the_rows_in_place_as_apply_waivers_would() -> None:
    rows = [row(), row(status="pass"), row(host="z"), row(phase="fix", status="fixed")]
    ws = [waiver(), waiver(hosts=("z",), expires=date(2020, 1, 1))]
    want = apply_waivers(rows, ws, {}, TODAY)
    originals = list(rows)
    waive_rows(rows, ws, {}, TODAY)
    assert rows == want
    assert all(a is b for a, b in zip(rows, originals, strict=True))
    assert [r["status"] for r in rows] == ["waived", "pass", "fail", "fixed"]
    assert str(rows[2]["message"]).endswith("waiver expired on 2020-01-01")


def test_messages_stay_capped_and_keep_the_note() -> None:
    long = row(message="m" * MESSAGE_MAX_CHARS)
    expired = apply_waivers([long], [waiver(expires=date(2020, 1, 1))], {}, TODAY)[0]
    assert len(str(expired["message"])) <= MESSAGE_MAX_CHARS
    assert str(expired["message"]).endswith("; waiver expired on 2020-01-01")
    waived = apply_waivers([long], [waiver(reason="r\nwith newline")], {}, TODAY)[0]
    assert len(str(waived["message"])) <= MESSAGE_MAX_CHARS
    assert str(waived["message"]).startswith("waived: r with newline (approver j.doe")


def test_empty_message() -> None:
    out = apply_waivers([row(message="")], [waiver(expires=date(2020, 1, 1))], {}, TODAY)
    assert out[0]["message"] == "waiver expired on 2020-01-01"
    out = apply_waivers([row(message="")], [waiver()], {}, TODAY)
    assert out[0]["message"] == "waived: CI runners need docker (approver j.doe, expires 2027-01-31)"


def test_loaded_waivers_apply(tmp_path: Path) -> None:
    path = write(tmp_path, "waivers:\n  - control: core-docker\n    groups: [ci]\n    reason: needed\n")
    out = apply_waivers([row(host="r1")], load_waivers(path, KNOWN), {"r1": ("ci",)}, TODAY)
    assert out[0]["status"] == "waived"
