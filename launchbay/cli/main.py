"""The `launchbay` console script: every command module registered on the app, and exit codes.

Every `LaunchbayError` becomes one red message on stderr and its exit code (see
`launchbay.errors`); no command prints a traceback for a mistake the user can fix.
"""

from __future__ import annotations

import functools
import os
import sys
from typing import TYPE_CHECKING, Any, cast

from launchbay import installed_version

if TYPE_CHECKING:
    import typer


@functools.cache
def _registered() -> typer.Typer:
    """The app with every command module's verbs on it (importing a command module registers them)."""
    from launchbay.cli import (  # noqa: F401
        advise,
        cluster,
        desk,
        freeze,
        models,
        monitor,
        packaging,
        pipeline,
        project,
        rollout,
    )
    from launchbay.cli.app import app

    return app


def __getattr__(name: str) -> Any:
    """`app`, registered on first use: `launchbay --version` imports no command (PEP 562)."""
    if name == "app":
        return _registered()
    raise AttributeError(name)


def _click_errors() -> tuple[type[Exception], ...]:
    """Click's error classes: Typer >= 0.24 raises those of its own vendored copy of click,
    which are not subclasses of the `click` package's."""
    import click

    try:
        from typer._click.exceptions import ClickException as Vendored
    except ImportError:  # an older Typer raises click's own
        return (click.ClickException,)
    return (click.ClickException, Vendored)


def main() -> None:
    """Console-script entry point: run the app, turning launchbay errors into exit codes."""
    if sys.argv[1:] == ["--version"]:  # asked often (scripts, bug reports): answered before any import
        print(f"launchbay {installed_version()}")
        return
    import click
    import typer

    from launchbay.cli.app import err
    from launchbay.errors import EnvironmentProblem, LaunchbayError

    app = _registered()
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    # Everything launchbay writes -- the ledger, the registry's database, keys, tokens, records --
    # is its user's alone (files 0600, directories 0700), and so is what its processes write.
    os.umask(0o077)
    try:
        code = app(standalone_mode=False)
    except LaunchbayError as exc:
        err.print(f"[red]error:[/] {exc.message}", highlight=False)
        if isinstance(exc, EnvironmentProblem) and "doctor" not in sys.argv[1:2]:
            err.print(
                "  `launchbay doctor` checks what this machine needs, with the fix for each problem",
                highlight=False,
            )
        raise SystemExit(exc.exit_code) from None
    except typer.Abort:
        err.print("aborted")
        raise SystemExit(130) from None
    except KeyboardInterrupt:
        err.print("interrupted")
        raise SystemExit(130) from None
    except _click_errors() as exc:
        # A usage mistake (unknown verb or option, missing argument, value out of range): one line
        # naming it, click's own exit code (2 for usage), never a traceback.
        usage = cast(click.ClickException, exc)  # the vendored class has the same shape
        ctx = getattr(usage, "ctx", None)
        where = ctx.command_path if ctx is not None else "launchbay"
        hint = f" (see '{where} --help')" if usage.exit_code == 2 else ""
        err.print(f"[red]error:[/] {usage.format_message()}{hint}", highlight=False)
        raise SystemExit(usage.exit_code) from None
    if isinstance(code, int) and code:
        raise SystemExit(code)
