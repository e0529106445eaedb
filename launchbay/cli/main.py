"""The `launchbay` console script: every command module registered on the app, and exit codes.

Every `LaunchbayError` becomes one red message on stderr and its exit code (see
`launchbay.errors`); no command prints a traceback for a mistake the user can fix.
"""

from __future__ import annotations

import os

import typer

# Importing a command module registers its verbs on `app`.
from launchbay.cli import advise, models, pipeline, rollout  # noqa: F401
from launchbay.cli.app import app, err
from launchbay.errors import LaunchbayError


def main() -> None:
    """Console-script entry point: run the app, turning launchbay errors into exit codes."""
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    # Everything launchbay writes -- the ledger, the registry's database, keys, tokens, records --
    # is its user's alone (files 0600, directories 0700), and so is what its processes write.
    os.umask(0o077)
    try:
        code = app(standalone_mode=False)
    except LaunchbayError as exc:
        err.print(f"[red]error:[/] {exc.message}", highlight=False)
        raise SystemExit(exc.exit_code) from None
    except typer.Abort:
        err.print("aborted")
        raise SystemExit(130) from None
    except KeyboardInterrupt:
        err.print("interrupted")
        raise SystemExit(130) from None
    except Exception as exc:
        import click

        if isinstance(exc, click.ClickException):
            exc.show()
            raise SystemExit(exc.exit_code) from None
        raise
    if isinstance(code, int) and code:
        raise SystemExit(code)
