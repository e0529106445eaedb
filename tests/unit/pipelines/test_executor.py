"""The local executor runs Hera workflows as Argo would: order, concurrency, parameters, failures.

Each test builds a small workflow from `sample_steps`, runs it with real processes and asserts on
what a user sees: task phases, outputs, files written, and the messages of failures.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from hera.workflows import DAG, Artifact, Container, Parameter, Steps, Workflow

from launchbay.pipelines.executor import LocalExecutor, TaskPhase, UnsupportedFeature

sys.path.insert(0, str(Path(__file__).parent))
import sample_steps as s


@pytest.fixture
def executor(tmp_path: Path) -> LocalExecutor:
    return LocalExecutor(
        tmp_path / "runs", env={"PYTHONPATH": str(Path(__file__).parent), "SAMPLE_ENV": "from-env"}
    )


def wf(**kwargs) -> Workflow:  # type: ignore[no-untyped-def]
    return Workflow(generate_name="t-", entrypoint="main", **kwargs)


def events(log: Path) -> dict[str, float]:
    out = {}
    for line in log.read_text().splitlines():
        label, what, t = line.split()
        out[f"{label} {what}"] = float(t)
    return out


def test_parameters_flow_between_tasks_like_argo(executor: LocalExecutor) -> None:
    with wf(arguments={"greeting": "hello"}) as w, DAG(name="main"):
        a = s.emit(name="a", arguments={"value": "{{workflow.parameters.greeting}}"})
        b = s.emit(name="b", arguments={"value": "world"})
        c = s.join(name="c", arguments={"a": a.get_parameter("value"), "b": b.get_parameter("value")})
        [a, b] >> c
    run = executor.run(w, parameters={"greeting": "hi"})
    assert run.succeeded
    assert run.tasks["c"].outputs == {"joined": "hi+world"}


def test_dependencies_order_tasks_and_independent_tasks_overlap(
    executor: LocalExecutor, tmp_path: Path
) -> None:
    log = str(tmp_path / "log")
    with wf() as w, DAG(name="main"):
        first = s.stamp(name="first", arguments={"label": "first", "seconds": 0.2, "log": log})
        left = s.stamp(name="left", arguments={"label": "left", "seconds": 1.5, "log": log})
        right = s.stamp(name="right", arguments={"label": "right", "seconds": 1.5, "log": log})
        last = s.stamp(name="last", arguments={"label": "last", "seconds": 0, "log": log})
        first >> [left, right] >> last
    run = executor.run(w)
    assert run.succeeded
    t = events(Path(log))
    assert t["first end"] <= t["left start"] and t["first end"] <= t["right start"]
    assert max(t["left end"], t["right end"]) <= t["last start"]
    # left and right ran at the same time: each started before the other ended
    assert t["left start"] < t["right end"] and t["right start"] < t["left end"]


def test_first_failure_stops_the_dag_and_names_the_task_and_cause(executor: LocalExecutor) -> None:
    with wf() as w, DAG(name="main"):
        ok = s.emit(name="ok", arguments={"value": "x"})
        bad = s.boom(name="bad", arguments={"message": "the model exploded"})
        after = s.emit(name="after", arguments={"value": "never"})
        ok >> bad >> after
    run = executor.run(w)
    assert not run.succeeded
    assert run.failed is not None and run.failed.name == "bad"
    assert "RuntimeError: the model exploded" in run.failed.message
    assert run.failed.attempts == 1  # no retry strategy: fails once
    assert run.tasks["ok"].phase is TaskPhase.SUCCEEDED
    assert run.tasks["after"].phase is TaskPhase.OMITTED


def test_retry_strategy_retries_until_success(executor: LocalExecutor, tmp_path: Path) -> None:
    counter = str(tmp_path / "count")
    with wf() as w, DAG(name="main"):
        s.flaky(name="f", arguments={"counter": counter, "failures": 2})
    run = executor.run(w)
    assert run.succeeded and run.tasks["f"].attempts == 3
    assert run.tasks["f"].outputs["attempt"] == "3"


def test_retry_limit_is_honoured(executor: LocalExecutor, tmp_path: Path) -> None:
    counter = str(tmp_path / "count")
    with wf() as w, DAG(name="main"):
        s.flaky_once(name="f", arguments={"counter": counter, "failures": 5})
    run = executor.run(w)
    assert not run.succeeded and run.tasks["f"].attempts == 2
    assert Path(counter).read_text() == "2"


def test_when_condition_skips_a_task_and_dependents_still_run(
    executor: LocalExecutor, tmp_path: Path
) -> None:
    heads, tails = tmp_path / "heads", tmp_path / "tails"
    with wf() as w, DAG(name="main"):
        c = s.coin(name="flip", arguments={"side": "heads"})
        h = s.touch(name="on-heads", arguments={"path": str(heads)}, when=f"{c.result} == heads")
        t = s.touch(name="on-tails", arguments={"path": str(tails)}, when=f"{c.result} == tails")
        done = s.emit(name="done", arguments={"value": "ok"})
        c >> [h, t] >> done
    run = executor.run(w)
    assert run.succeeded
    assert heads.read_text() == "from-env" and not tails.exists()
    assert run.tasks["on-tails"].phase is TaskPhase.SKIPPED
    assert run.tasks["done"].phase is TaskPhase.SUCCEEDED


def test_inline_scripts_run_with_substituted_inputs(executor: LocalExecutor) -> None:
    with wf() as w, DAG(name="main"):
        s.inline_echo(name="echo", arguments={"word": "bonjour"})
    run = executor.run(w)
    assert run.succeeded and run.tasks["echo"].result == "inline says bonjour"


def test_until_runs_only_the_task_and_its_ancestors(executor: LocalExecutor) -> None:
    with wf() as w, DAG(name="main"):
        a = s.emit(name="a", arguments={"value": "1"})
        b = s.emit(name="b", arguments={"value": "2"})
        c = s.emit(name="c", arguments={"value": "3"})
        a >> b >> c
    run = executor.run(w, until="b")
    assert set(run.tasks) == {"a", "b"} and run.succeeded
    with pytest.raises(ValueError, match="unknown task 'z'"):
        executor.run(w, until="z")


def test_missing_input_parameter_fails_the_task_clearly(executor: LocalExecutor) -> None:
    with wf() as w, DAG(name="main"):
        a = s.emit(name="a", arguments={"value": "1"})
        b = s.join(
            name="b", arguments={"a": a.get_parameter("value"), "b": "{{tasks.a.outputs.parameters.nope}}"}
        )
        a >> b
    run = executor.run(w)
    assert run.failed is not None and run.failed.name == "b"
    assert "no output parameter 'nope'" in run.failed.message


@pytest.mark.parametrize("build", ["artifact", "container", "steps", "loop", "on_exit", "failed_handler"])
def test_unsupported_argo_features_are_refused_before_anything_runs(
    build: str, executor: LocalExecutor, tmp_path: Path
) -> None:
    marker = tmp_path / "ran"
    kwargs = {"on_exit": "main"} if build == "on_exit" else {}
    with wf(**kwargs) as w:
        if build == "steps":
            with Steps(name="main"):
                s.touch(arguments={"path": str(marker)})
        else:
            with DAG(name="main"):
                first = s.touch(name="first", arguments={"path": str(marker)})
                if build == "container":
                    Container(name="c", image="alpine", command=["true"])(name="c")
                if build == "loop":
                    s.emit(name="loop", with_items=["a", "b"], arguments={"value": "{{item}}"})
                if build == "artifact":
                    s.emit(name="art", arguments=[Parameter(name="value", value="x")], depends="first")
                    w.templates[-1].outputs = [Artifact(name="out", path="/tmp/out")]
                if build == "failed_handler":
                    s.emit(name="cleanup", arguments={"value": "x"}, depends=f"{first.name}.Failed")
    with pytest.raises(UnsupportedFeature) as err:
        executor.run(w)
    assert "not supported" in str(err.value), str(err.value)
    assert not marker.exists()


@pytest.fixture(params=["warm", "cold"])
def start(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """How steps start: forked from the warm forkserver, or a new interpreter each (the switch)."""
    if request.param == "cold":
        monkeypatch.setenv("LAUNCHBAY_WARM_STEPS", "0")
    else:
        monkeypatch.delenv("LAUNCHBAY_WARM_STEPS", raising=False)
    return str(request.param)


def test_steps_start_warm_yet_each_is_a_process_of_its_own(
    executor: LocalExecutor, tmp_path: Path, start: str
) -> None:
    """A step that changes its directory, environment, a library and leaks memory leaves the next
    step (and the executor) exactly as they were: it ran in its own process, warm or cold."""
    import json
    import os

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    with wf() as w, DAG(name="main"):
        first = s.observe(name="first")
        mess = s.meddle(name="mess", arguments={"where": str(elsewhere)})
        after = s.observe(name="after")
        first >> mess >> after
    cwd, env = str(Path.cwd()), dict(os.environ)
    run = executor.run(w)
    assert run.succeeded, {n: t.message for n, t in run.tasks.items()}
    assert all(t.warm == (start == "warm") for t in run.tasks.values()), executor.warm.disabled
    seen = [json.loads(run.tasks[n].outputs["seen"]) for n in ("first", "after")]
    assert seen[0]["cwd"] == seen[1]["cwd"] == cwd
    assert seen[0]["sample_env"] == seen[1]["sample_env"] == "from-env"
    assert seen[1]["left_behind"] is None
    assert seen[0]["pid"] != seen[1]["pid"] != os.getpid() and all(x["sid_is_own"] for x in seen)
    assert (str(Path.cwd()), dict(os.environ)) == (cwd, env)


@pytest.mark.parametrize("step", ["exit_hard", "kill_self"])
def test_a_step_that_crashes_fails_only_its_task_with_its_cause_and_the_next_run_is_unaffected(
    executor: LocalExecutor, step: str, start: str
) -> None:
    with wf() as w, DAG(name="main"):
        crash = (
            s.exit_hard(name="crash", arguments={"code": 3})
            if step == "exit_hard"
            else s.kill_self(name="crash")
        )
        crash >> s.emit(name="never", arguments={"value": "x"})
    run = executor.run(w)
    assert run.tasks["crash"].phase is TaskPhase.FAILED and run.tasks["crash"].warm == (start == "warm")
    assert run.tasks["crash"].message.startswith("exit code 3" if step == "exit_hard" else "exit code -9")
    assert run.tasks["never"].phase is not TaskPhase.SUCCEEDED
    with wf() as again, DAG(name="main"):
        s.emit(name="a", arguments={"value": "fine"})
    second = executor.run(again)
    assert second.succeeded and second.tasks["a"].outputs == {"value": "fine"}
    assert second.tasks["a"].warm == (start == "warm")


def test_steps_start_cold_when_told_to(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LAUNCHBAY_WARM_STEPS", "0")
    cold = LocalExecutor(tmp_path / "cold", env={"PYTHONPATH": str(Path(__file__).parent)})
    with wf() as w, DAG(name="main"):
        s.emit(name="a", arguments={"value": "v"})
    run = cold.run(w)
    assert run.succeeded and not run.tasks["a"].warm and cold.warm.disabled == "LAUNCHBAY_WARM_STEPS=0"


def test_a_step_past_its_deadline_is_killed_and_fails_saying_so(
    executor: LocalExecutor, tmp_path: Path, start: str
) -> None:
    import time

    log = str(tmp_path / "log")
    with wf() as w, DAG(name="main"):
        s.stamp_with_deadline(name="slow", arguments={"label": "slow", "seconds": 60, "log": log})
    started = time.monotonic()
    run = executor.run(w)
    assert time.monotonic() - started < 30  # killed at its 2 s deadline, not run for its 60 s
    slow = run.tasks["slow"]
    assert slow.phase is TaskPhase.FAILED
    assert "exceeded activeDeadlineSeconds (2s) and was killed" in slow.message
    assert "slow end" not in (tmp_path / "log").read_text()
