"""The one exception family the CLI turns into a message and an exit code (no traceback).

Exit codes are part of the contract with CI systems and scripts:

* 1 -- the pipeline ran and a gate or step said no (`PipelineFailed`).
* 2 -- the user's input is wrong: config file, command-line usage (`ConfigError`, `UsageError`).
* 3 -- something launchbay depends on is unreachable or broken (`EnvironmentProblem`).
* 4 -- the action is not allowed for this person or in this state (`Refused`), e.g. an approval
  by someone not in the approvers list, or by the release's own author.
"""

from __future__ import annotations


class LaunchbayError(Exception):
    """Base class: an error with a message meant for a person and a process exit code."""

    exit_code: int = 1

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class PipelineFailed(LaunchbayError):
    """A step of the pipeline failed or a gate refused the model."""

    exit_code = 1


class ConfigError(LaunchbayError):
    """The configuration file is missing, unparsable or invalid."""

    exit_code = 2


class UsageError(LaunchbayError):
    """A command was called with arguments that cannot work."""

    exit_code = 2


class EnvironmentProblem(LaunchbayError):
    """A service launchbay needs (MLflow, Argo, ...) cannot be reached or used."""

    exit_code = 3


class Refused(LaunchbayError):
    """The action is not allowed: wrong person (four eyes, approvers) or wrong release state."""

    exit_code = 4
