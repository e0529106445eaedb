"""The CLI's usage contract: a mistake on the command line is one `error:` line and exit 2."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import typer
from harness import assert_clean_error, lb

from launchbay.cli.main import app, main

VERBS = sorted(typer.main.get_command(app).commands)  # type: ignore[attr-defined]


def _leaves(command: Any, path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], Any]]:
    """Every verb, subcommands of groups (`keys init`) included, with its click command."""
    subcommands = getattr(command, "commands", None)
    if not subcommands:
        return [(path, command)]
    return [leaf for name, sub in sorted(subcommands.items()) for leaf in _leaves(sub, (*path, name))]


LEAVES = _leaves(typer.main.get_command(app))
REQUIRED = [
    (path, [q.metavar or q.name for q in arguments[:i]], p.metavar or p.name)
    for path, command in LEAVES
    for arguments in [[p for p in command.params if p.required and p.param_type_name == "argument"]]
    for i, p in enumerate(arguments)
]
"""(verb, the arguments before it given as placeholders, the argument left out)."""


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


@pytest.mark.parametrize("path", [p for p, _ in LEAVES], ids=" ".join)
def test_every_verb_offers_json(path: tuple[str, ...]) -> None:
    command = dict(LEAVES)[path]
    options = {o for p in command.params for o in getattr(p, "opts", [])}
    assert "--json" in options, f"launchbay {' '.join(path)} has no --json"


@pytest.mark.parametrize("path", [p for p, _ in LEAVES if len(p) > 1], ids=" ".join)
def test_subcommands_keep_the_contract_too(
    path: tuple[str, ...], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert "No such option: --no-such-flag" in _usage([*path, "--no-such-flag"], monkeypatch, capsys)


@pytest.mark.parametrize(
    ("path", "before", "argument"), REQUIRED, ids=[" ".join((*p, a)) for p, _, a in REQUIRED]
)
def test_a_missing_argument_is_named_for_every_verb_that_needs_one(
    path: tuple[str, ...],
    before: list[str],
    argument: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert f"Missing argument '{argument}'" in _usage([*path, *before], monkeypatch, capsys)


def test_version_and_completion(tmp_path: Path) -> None:
    res = lb("--version", cwd=tmp_path)
    assert res.returncode == 0 and res.stdout.startswith("launchbay ") and res.stderr == ""
    completion = lb("--show-completion", "bash", cwd=tmp_path)
    assert completion.returncode == 0 and "complete" in completion.stdout, completion.output


def test_a_bad_choice_is_named_with_the_choices(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    line = _usage(["init", "--task", "clustering"], monkeypatch, capsys)
    assert "'clustering' is not one of" in line and "regression" in line
