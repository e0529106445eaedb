"""The CLI's usage contract: a mistake on the command line is one `error:` line and exit 2."""

from __future__ import annotations

from pathlib import Path

import pytest
import typer
from harness import assert_clean_error, lb

from launchbay.cli.main import app, main

VERBS = sorted(typer.main.get_command(app).commands)  # type: ignore[attr-defined]


def _usage(args: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> str:
    monkeypatch.setattr("sys.argv", ["launchbay", *args])
    with pytest.raises(SystemExit) as exit_:
        main()
    assert exit_.value.code == 2, capsys.readouterr()
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), captured.err
    return lines[0]


def test_every_verb_is_covered() -> None:
    assert {"run", "status", "release", "approve", "rollback", "audit", "down"} <= set(VERBS)


@pytest.mark.parametrize("verb", VERBS)
def test_unknown_option_names_it_and_the_verbs_help(
    verb: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    line = _usage([verb, "--no-such-flag"], monkeypatch, capsys)
    assert "No such option: --no-such-flag" in line
    assert f"launchbay {verb} --help" in line


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["no-such-verb"], "No such command 'no-such-verb'"),
        (["stauts"], "Did you mean 'status'?"),
        (["status", "--jsn"], "--json"),
        (["verify"], "Missing argument 'MODEL@REF'"),
        (["approve"], "Missing argument 'RELEASE'"),
        (["render", "--weight", "150"], "'--weight'"),
    ],
)
def test_usage_mistakes_name_what_is_wrong(
    args: list[str], named: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert named in _usage(args, monkeypatch, capsys)


def test_the_installed_command_keeps_the_contract(tmp_path: Path) -> None:
    assert_clean_error(lb("no-such-verb", cwd=tmp_path), 2, "No such command")
    assert_clean_error(lb("status", "--no-such-flag", cwd=tmp_path), 2, "--no-such-flag")
