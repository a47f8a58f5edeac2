"""`params`, `doctor` and `keys` name their hosts as the runbooks do: `-i INVENTORY_DIR` or `--config NORNIR_CONFIG`
(a Nornir config file), with the same help and the same errors. No lab: the hosts are a closed loopback port."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from hardnir.cli import build_parser, main
from hardnir.keys import run_keys
from tests.offline_setup import simple_inventory_config, unreachable_inventory

COMMANDS = (["params"], ["doctor"], ["keys", "check"], ["keys", "scan", "--accept"])


def subparser(parser: argparse.ArgumentParser, *path: str) -> argparse.ArgumentParser:
    for name in path:
        action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        parser = action.choices[name]
    return parser


def inventory_help(parser: argparse.ArgumentParser) -> dict[str, tuple[object, ...]]:
    return {a.dest: (a.metavar, a.help, a.required) for a in parser._actions if a.dest in ("inventory", "config")}


@pytest.fixture()
def config(tmp_path: Path) -> Path:
    return simple_inventory_config(unreachable_inventory(tmp_path / "inv", ("h1", "h2")), tmp_path / "nornir.yaml")


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_the_same_inventory_options_as_audit(command: list[str]) -> None:
    parser = build_parser()
    wanted = inventory_help(subparser(parser, "audit"))
    assert set(wanted) == {"inventory", "config"}
    assert inventory_help(subparser(parser, *command[:2] if command[0] == "keys" else command[:1])) == wanted


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_the_same_errors(command: list[str], tmp_path: Path, config: Path,
                         capsys: pytest.CaptureFixture[str]) -> None:
    for args, error in (([], "one of the arguments -i/--inventory --config is required"),
                        (["-i", str(tmp_path / "inv"), "--config", str(config)],
                         "argument --config: not allowed with argument -i/--inventory")):
        with pytest.raises(SystemExit) as exit_:
            main([*command, *args])
        assert exit_.value.code == 2 and error in capsys.readouterr().err
    missing = tmp_path / "missing.yaml"
    assert main([*command, "--config", str(missing)]) == 2
    assert capsys.readouterr().err == f"hardnir: error: --config {missing}: Nornir config file not found\n"


def test_params_reads_a_nornir_config(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["params", "--config", str(config), "--controls", "core-rkt", "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert list(shown) == ["h1", "h2"]
    assert shown["h1"]["connection"]["port"] == 1 and shown["h1"]["connection"]["extras"]["connect_timeout"] == 2


def test_doctor_reads_a_nornir_config(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["doctor", "--config", str(config), "--hosts", "h2", "--quiet"]) == 4  # nothing listens there
    out = capsys.readouterr().out
    assert "h2" in out and "h1" not in out and "ready: 0 of 1 hosts" in out, out


def test_keys_reads_a_nornir_config(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["keys", "check", "--config", str(config), "--quiet"]) == 4
    out = capsys.readouterr().out
    assert "h1" in out and "h2" in out and "check: 2 unreachable" in out, out
    assert run_keys(None, "check", config=config, hosts="h1").inventory_args == f"--config {config}"
