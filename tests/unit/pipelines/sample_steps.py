"""Hera steps used by the executor tests (imported by Hera's runner in task processes)."""

import os
import time
from pathlib import Path
from typing import Annotated

from hera.workflows import Parameter, RetryStrategy, script


@script(constructor="runner")
def emit(value: str) -> Annotated[str, Parameter(name="value")]:
    return value


@script(constructor="runner")
def join(a: str, b: str) -> Annotated[str, Parameter(name="joined")]:
    return f"{a}+{b}"


@script(constructor="runner")
def stamp(label: str, seconds: float, log: str) -> None:
    """Record start and end times in a shared log, for ordering and concurrency assertions."""
    _stamp(label, seconds, log)


def _stamp(label: str, seconds: float, log: str) -> None:
    with Path(log).open("a") as fh:
        fh.write(f"{label} start {time.time()}\n")
    time.sleep(seconds)
    with Path(log).open("a") as fh:
        fh.write(f"{label} end {time.time()}\n")


@script(constructor="runner")
def boom(message: str) -> None:
    raise RuntimeError(message)


def _count_and_maybe_fail(counter: str, failures: int) -> str:
    """Fail `failures` times (counted in a file), then succeed."""
    path = Path(counter)
    n = int(path.read_text()) + 1 if path.exists() else 1
    path.write_text(str(n))
    if n <= failures:
        raise RuntimeError(f"attempt {n} fails")
    return str(n)


@script(constructor="runner", retry_strategy=RetryStrategy(limit=2, retry_policy="OnFailure"))
def flaky(counter: str, failures: int) -> Annotated[str, Parameter(name="attempt")]:
    return _count_and_maybe_fail(counter, failures)


@script(constructor="runner", retry_strategy=RetryStrategy(limit=1))
def flaky_once(counter: str, failures: int) -> Annotated[str, Parameter(name="attempt")]:
    return _count_and_maybe_fail(counter, failures)


@script(constructor="runner")
def coin(side: str) -> str:
    return side


@script(constructor="runner")
def touch(path: str) -> None:
    Path(path).write_text(os.environ.get("SAMPLE_ENV", "unset"))


@script()
def inline_echo(word: str) -> None:
    print(f"inline says {word}")


@script(constructor="runner")
def exit_hard(code: int) -> None:
    """Leave without Python's shutdown (as a native crash or os._exit would)."""
    os._exit(code)


@script(constructor="runner")
def kill_self() -> None:
    import signal

    os.kill(os.getpid(), signal.SIGKILL)


@script(constructor="runner")
def meddle(where: str) -> None:
    """Change everything a step could change in its own process: directory, environment, the
    imported modules' state, memory; then hold on to it."""
    import json as json_module

    os.chdir(where)
    os.environ["SAMPLE_ENV"] = "meddled"
    os.environ["LEFT_BEHIND"] = "yes"
    json_module.dumps = lambda *_a, **_k: "poisoned"  # type: ignore[assignment]
    globals()["HOARD"] = bytearray(200 * 1024 * 1024)  # a leak of 200 MB


@script(constructor="runner")
def observe() -> Annotated[str, Parameter(name="seen")]:
    """What a step finds when it starts: its directory, environment, pid and a stdlib module."""
    import json as json_module

    return json_module.dumps(
        {
            "cwd": str(Path.cwd()),
            "sample_env": os.environ.get("SAMPLE_ENV"),
            "left_behind": os.environ.get("LEFT_BEHIND"),
            "pid": os.getpid(),
            "sid_is_own": os.getsid(0) == os.getpid(),
        }
    )


@script(constructor="runner", active_deadline_seconds=2)
def stamp_with_deadline(label: str, seconds: float, log: str) -> None:
    """`stamp`, with a deadline of 2 s."""
    _stamp(label, seconds, log)
