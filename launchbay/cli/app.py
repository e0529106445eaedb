"""The Typer application and what every command shares: consoles, common options, who is acting.

This module defines no command and imports none: each command module registers its verbs on
`app`, and `launchbay.cli.main` imports them all. Commands only parse, wire and print; what they
do lives in the packages below.
"""

from __future__ import annotations

import getpass
import os
import subprocess
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from launchbay import installed_version

app = typer.Typer(
    name="launchbay",
    help="MLOps CI/CD with progressive delivery: gated training, signed models, safe rollouts.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=True,  # --install-completion / --show-completion for bash, zsh, fish
)
out = Console()
err = Console(stderr=True, soft_wrap=True)


def _print_version(value: bool) -> None:
    if value:
        out.print(f"launchbay {installed_version()}", highlight=False)
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_print_version, is_eager=True, help="Print the version and exit."),
    ] = False,
) -> None:
    """MLOps CI/CD with progressive delivery: gated training, signed models, safe rollouts."""


ConfigOpt = Annotated[
    Path | None,
    typer.Option(
        "--config",
        "-c",
        help="Pipeline config file.",
        envvar="LAUNCHBAY_CONFIG",
        show_default="launchbay.yaml",
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]
AsOpt = Annotated[
    str | None,
    typer.Option(
        "--as", help="Your name, as the approvers list spells it (default: $LAUNCHBAY_USER, git user.name)."
    ),
]
ReasonOpt = Annotated[str, typer.Option(help="Why (recorded in the event log).")]


class Runtime(StrEnum):
    """The servers a version can run on (`serving.runtime`)."""

    bentoml = "bentoml"
    lean = "lean"


RuntimeOpt = Annotated[
    Runtime | None,
    typer.Option(
        "--runtime", help="bentoml (the Bento's service) or lean (uvicorn + ONNX); default: serving.runtime."
    ),
]
ReleaseArg = Annotated[
    str, typer.Argument(metavar="RELEASE", help="Release id (7) or model name (its release waiting or live).")
]
ModelArg = Annotated[str, typer.Argument(metavar="MODEL", help="Model name.")]
ModelRefArg = Annotated[
    str, typer.Argument(metavar="MODEL@REF", help="e.g. fraud-detector@champion or fraud-detector@3")
]


def whoami(explicit: str | None) -> str:
    """The person acting: --as, $LAUNCHBAY_USER, git's user.name, or the login name."""
    if explicit:
        return explicit
    if env := os.environ.get("LAUNCHBAY_USER"):
        return env
    try:
        name = subprocess.run(
            ["git", "config", "user.name"], capture_output=True, text=True, timeout=5, check=False
        ).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        name = ""
    return name or getpass.getuser()


def git_commit(directory: Path) -> str:
    """The commit checked out where the config lives, or "" outside a git work tree."""
    try:
        res = subprocess.run(
            ["git", "-C", str(directory), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return res.stdout.strip() if res.returncode == 0 else ""
