"""Checks of a project made before any step runs: a wrong `model.train` must not cost a data gate.

`check_project` imports the training module the way the steps will (the config's directory first
on the import path), checks that it names a function taking (features, target, params), that the
shipped code exists, and that the data file is there (what is in it is the data gate's to judge,
with its report). `user_frames` turns a failure inside the user's code into their own frames first,
not Hera's and pydantic's.
"""

from __future__ import annotations

import importlib
import inspect
import os
import sys
import traceback
from pathlib import Path

from launchbay.config import LaunchbayConfig
from launchbay.errors import ConfigError

DEBUG_ENV = "LAUNCHBAY_DEBUG"


def check_project(cfg: LaunchbayConfig, data: str | None = None) -> list[str]:
    """What is wrong with the project before a run (empty: nothing found).

    Args:
        data: the data file the run will use (default: `data.path`).
    """
    problems = [*_train_problems(cfg), *_code_problems(cfg)]
    configured = cfg.resolve_path(cfg.data.path)
    given = data or configured
    problems += _data_problems(cfg, given, "data.path" if given == configured else "--data")
    return problems


def require_project(cfg: LaunchbayConfig, data: str | None = None) -> None:
    """Raise ConfigError (exit 2) listing every problem `check_project` finds."""
    if problems := check_project(cfg, data):
        where = cfg.source or "launchbay.yaml"
        raise ConfigError("\n".join(f"{where}: {p}" for p in problems))


def _train_problems(cfg: LaunchbayConfig) -> list[str]:
    module_name, _, attr = cfg.model.train.partition(":")
    base = str(cfg.base_dir)
    added = base not in sys.path
    if added:
        sys.path.insert(0, base)
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # the user's module may fail in any way while importing
        return [f"model.train: cannot import module {module_name!r} from {base}: {type(exc).__name__}: {exc}"]
    finally:
        if added:
            sys.path.remove(base)
    fn = getattr(module, attr, None)
    if fn is None:
        names = [n for n, v in vars(module).items() if inspect.isfunction(v) and not n.startswith("_")]
        listed = ", ".join(names) or "none"
        return [f"model.train: {module_name!r} has no function {attr!r} (functions: {listed})"]
    if not callable(fn):
        return [f"model.train: {module_name}.{attr} is a {type(fn).__name__}, not a function"]
    try:
        inspect.signature(fn).bind(None, None, None)
    except TypeError:
        return [f"model.train: {module_name}.{attr} must accept (features, target, params)"]
    except ValueError:  # no signature to inspect (a builtin): let the call decide
        pass
    return []


def _code_problems(cfg: LaunchbayConfig) -> list[str]:
    if cfg.model.code is None:
        return []
    return [
        f"model.code: {p} does not exist (expected a module file or a package beside the config)"
        for p in cfg.code_paths()
        if not p.exists()
    ]


def _data_problems(cfg: LaunchbayConfig, path: str, label: str) -> list[str]:
    if "://" in path:
        return []  # a remote URI is read by the data gate, which reports what it finds
    file = Path(path)
    if not file.exists():
        return [f"{label}: {file} does not exist"]
    # What is in the file (columns, types, values) is the data gate's to judge, with its report.
    return []


def user_frames(exc: BaseException, base_dir: Path, what: str) -> str:
    """A failure inside the user's code as they want to read it: the error, then the frames of
    files under `base_dir` (their repository), then how many other frames were left out."""
    frames = traceback.extract_tb(exc.__traceback__)
    base = str(base_dir.resolve())
    own = [f for f in frames if str(Path(f.filename).resolve()).startswith(base + os.sep)]
    lines = [f"{what} failed: {type(exc).__name__}: {exc}"]
    for f in own or frames[-3:]:
        lines.append(f'  File "{f.filename}", line {f.lineno}, in {f.name}')
        if f.line:
            lines.append(f"    {f.line}")
    hidden = len(frames) - len(own or frames[-3:])
    if hidden:
        lines.append(f"  ({hidden} frame(s) of launchbay and libraries left out; {DEBUG_ENV}=1 shows them)")
    return "\n".join(lines)
