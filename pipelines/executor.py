"""Run a Hera/Argo Workflow on this machine, the way Argo would run it in a cluster.

Hera has no local runner (argoproj-labs/hera#1492). This executor takes the *same* Workflow
object that is rendered for Argo, builds its Argo spec, and interprets that spec:

* the entrypoint DAG's tasks run when their `dependencies`/`depends` are met, independent tasks
  concurrently (up to `spec.parallelism` or the CPU count);
* each script template runs as Argo runs it: `source` (with `{{inputs.parameters...}}`
  substituted) is written to a file whose path is appended to `command + args`, in its own
  process -- so a Hera runner step executes `python -m hera.workflows.runner -e mod:fn FILE`;
* output parameters are read from their `valueFrom.path` files, `outputs.result` from stdout,
  and passed to later tasks through `{{tasks.X.outputs...}}` arguments;
* `when` conditions, `retryStrategy` (limit, policy, backoff) and `activeDeadlineSeconds` are
  honoured; the first failed task stops the DAG (Argo's failFast) and is named with its cause.

Anything else Argo can do (artifacts, loops, suspend, steps, nested DAGs, exit handlers, ...)
raises `UnsupportedFeature` before any task starts: never a silent skip. Fields that only tell
Kubernetes where and how to schedule a pod (image, resources, service account, ...) have no
meaning on one machine and are ignored by design; they are listed in `_IGNORED_*`.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from launchbay.pipelines import warm
from launchbay.pipelines.expressions import ExpressionError, depends_names, evaluate_depends, evaluate_when

# Fields with no local meaning (pod placement, image, security, accounting): ignored by design.
_IGNORED_SPEC = {
    "serviceAccountName",
    "podGC",
    "ttlStrategy",
    "imagePullSecrets",
    "nodeSelector",
    "tolerations",
    "affinity",
    "securityContext",
    "podMetadata",
    "workflowMetadata",
    "archiveLogs",
    "priority",
    "podPriorityClassName",
    "schedulerName",
    "artifactRepositoryRef",
}
_SUPPORTED_SPEC = {"entrypoint", "templates", "arguments", "parallelism"}
_IGNORED_TEMPLATE = {
    "metadata",
    "nodeSelector",
    "tolerations",
    "affinity",
    "serviceAccountName",
    "securityContext",
    "podSpecPatch",
    "priority",
    "priorityClassName",
    "schedulerName",
    "automountServiceAccountToken",
    "archiveLocation",
}
_SUPPORTED_TEMPLATE = {"name", "inputs", "outputs", "dag", "script", "retryStrategy", "activeDeadlineSeconds"}
_IGNORED_SCRIPT = {"image", "imagePullPolicy", "resources", "securityContext", "name"}
_SUPPORTED_SCRIPT = {"source", "command", "args", "env"}
_SUPPORTED_TASK = {"name", "template", "arguments", "dependencies", "depends", "when"}
_VAR = re.compile(r"\{\{\s*([^{}]+?)\s*\}\}")


class UnsupportedFeature(Exception):
    """The workflow uses an Argo feature the local executor does not implement."""


class TaskPhase(StrEnum):
    """The phase of a task of the local executor, with Argo's node phase names (not a release's Phase)."""

    PENDING = "Pending"
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    SKIPPED = "Skipped"
    """Its `when` condition was false."""
    OMITTED = "Omitted"
    """Never ran: a dependency failed, the DAG stopped, or it lies beyond `until`."""


@dataclass
class TaskRun:
    """What happened to one task."""

    name: str
    template: str
    phase: TaskPhase = TaskPhase.PENDING
    attempts: int = 0
    started: float | None = None
    finished: float | None = None
    outputs: dict[str, str] = field(default_factory=dict)
    result: str | None = None
    message: str = ""
    stderr: str = ""
    warm: bool = False
    """Its (last) attempt was forked from the warm forkserver rather than a new interpreter."""

    @property
    def seconds(self) -> float:
        """Wall time from the first attempt's start to the end (0 if it never ran)."""
        return (self.finished - self.started) if self.started and self.finished else 0.0


@dataclass
class WorkflowRun:
    """What happened to a whole workflow run."""

    name: str
    tasks: dict[str, TaskRun]
    started: float
    finished: float = 0.0
    workdir: Path | None = None

    @property
    def failed(self) -> TaskRun | None:
        """The first task that failed, if any."""
        failed = [t for t in self.tasks.values() if t.phase is TaskPhase.FAILED]
        return min(failed, key=lambda t: t.finished or 0.0) if failed else None

    @property
    def succeeded(self) -> bool:
        """True when no task failed."""
        return self.failed is None

    @property
    def seconds(self) -> float:
        """Total wall time of the run."""
        return self.finished - self.started

    def critical_path_seconds(self, dag: dict[str, set[str]]) -> float:
        """Longest chain of task times through the DAG: the time a perfect executor would take."""
        memo: dict[str, float] = {}

        def longest(name: str) -> float:
            if name not in memo:
                memo[name] = self.tasks[name].seconds + max((longest(d) for d in dag[name]), default=0.0)
            return memo[name]

        return max((longest(n) for n in self.tasks), default=0.0)


@dataclass(frozen=True)
class _Task:
    name: str
    template: dict[str, Any]
    arguments: dict[str, str]
    deps: frozenset[str]
    depends: str | None
    when: str | None


class LocalExecutor:
    """Runs a Workflow's entrypoint DAG with local processes.

    Args:
        workdir: where each run keeps its task inputs, outputs and logs.
        env: extra environment for every task (on top of this process's environment).
        on_change: called (from worker threads) whenever a task changes phase.
        python: interpreter used for templates whose command is `python`/`python3`.
    """

    def __init__(
        self,
        workdir: Path,
        env: dict[str, str] | None = None,
        on_change: Callable[[TaskRun], None] | None = None,
        python: str = sys.executable,
    ) -> None:
        self.workdir = workdir
        self.env = env or {}
        self.on_change = on_change or (lambda _t: None)
        self.python = python
        self._procs: set[subprocess.Popen[bytes] | warm.WarmProcess] = set()
        self._lock = threading.Lock()
        self.warm = warm.starter(python)

    # -- planning ---------------------------------------------------------------------------

    def plan(
        self, workflow: Any, parameters: dict[str, str] | None = None, until: str | None = None
    ) -> tuple[dict[str, _Task], dict[str, str], dict[str, Any]]:
        """Validate the workflow and return its tasks, workflow parameters and spec.

        Raises:
            UnsupportedFeature: for any Argo feature not implemented here.
            ValueError: for an unknown `until` task or parameter.
        """
        manifest = workflow if isinstance(workflow, dict) else workflow.to_dict()
        spec = manifest.get("spec", {})
        _only(spec, _SUPPORTED_SPEC, _IGNORED_SPEC, "workflow spec")
        templates = {t["name"]: t for t in spec.get("templates", [])}
        entry = templates.get(spec.get("entrypoint", ""))
        if entry is None:
            raise UnsupportedFeature(
                f"entrypoint {spec.get('entrypoint')!r} is not a template of this workflow"
            )
        if "dag" not in entry:
            kind = next((k for k in entry if k not in {"name", "inputs", "outputs", "metadata"}), "?")
            raise UnsupportedFeature(
                f"entrypoint {entry['name']}: a '{kind}' entrypoint is not supported by the local executor "
                "(it runs a DAG entrypoint)"
            )
        dag = entry["dag"]
        _only(dag, {"tasks", "failFast"}, set(), f"DAG {entry['name']}")
        if entry.get("inputs"):
            raise UnsupportedFeature(f"DAG {entry['name']}: inputs on the entrypoint DAG")

        params = {p["name"]: str(p.get("value", "")) for p in spec.get("arguments", {}).get("parameters", [])}
        for key, value in (parameters or {}).items():
            if key not in params:
                raise ValueError(f"unknown workflow parameter {key!r} (known: {', '.join(params)})")
            params[key] = value

        tasks: dict[str, _Task] = {}
        for raw in dag.get("tasks", []):
            _only(raw, _SUPPORTED_TASK, set(), f"task {raw.get('name')}")
            template = templates.get(raw["template"])
            if template is None:
                raise UnsupportedFeature(f"task {raw['name']}: template {raw['template']!r} does not exist")
            self._check_template(template)
            args = raw.get("arguments", {})
            _only(args, {"parameters"}, set(), f"task {raw['name']} arguments")
            deps = set(raw.get("dependencies") or [])
            try:
                if raw.get("depends"):
                    deps |= depends_names(raw["depends"])
            except ExpressionError as exc:
                raise UnsupportedFeature(f"task {raw['name']}: {exc}") from None
            arguments = {}
            for p in args.get("parameters", []):
                _only(p, {"name", "value"}, set(), f"task {raw['name']} argument")
                arguments[p["name"]] = str(p.get("value", ""))
            tasks[raw["name"]] = _Task(
                raw["name"], template, arguments, frozenset(deps), raw.get("depends"), raw.get("when")
            )
        for t in tasks.values():
            if missing := t.deps - tasks.keys():
                raise UnsupportedFeature(f"task {t.name}: depends on unknown task(s) {sorted(missing)}")
        if until is not None:
            if until not in tasks:
                raise ValueError(f"unknown task {until!r} (tasks: {', '.join(tasks)})")
            keep = _ancestors(tasks, until)
            tasks = {n: t for n, t in tasks.items() if n in keep}
        return tasks, params, spec

    def _check_template(self, template: dict[str, Any]) -> None:
        name = template["name"]
        _only(template, _SUPPORTED_TEMPLATE, _IGNORED_TEMPLATE, f"template {name}")
        if "script" not in template:
            kind = next((k for k in template if k not in _SUPPORTED_TEMPLATE | _IGNORED_TEMPLATE), "dag")
            raise UnsupportedFeature(
                f"template {name}: '{kind}' templates are not supported by the local executor (only 'script')"
            )
        _only(template["script"], _SUPPORTED_SCRIPT, _IGNORED_SCRIPT, f"template {name} script")
        for e in template["script"].get("env", []):
            _only(e, {"name", "value"}, set(), f"template {name} env")
        _only(template.get("inputs", {}), {"parameters"}, set(), f"template {name} inputs")
        _only(template.get("outputs", {}), {"parameters"}, set(), f"template {name} outputs")
        for p in template.get("outputs", {}).get("parameters", []):
            _only(p.get("valueFrom", {}), {"path", "default"}, set(), f"template {name} output {p['name']}")
        retry = template.get("retryStrategy", {})
        _only(retry, {"limit", "retryPolicy", "backoff"}, {"affinity"}, f"template {name} retryStrategy")
        if retry.get("retryPolicy", "OnFailure") not in {"Always", "OnFailure", "OnError"}:
            raise UnsupportedFeature(f"template {name}: retryPolicy {retry['retryPolicy']!r}")

    # -- running ----------------------------------------------------------------------------

    def run(
        self, workflow: Any, parameters: dict[str, str] | None = None, until: str | None = None
    ) -> WorkflowRun:
        """Run the workflow; return when every task has finished or the DAG stopped on a failure."""
        tasks, params, spec = self.plan(workflow, parameters, until)
        name = f"{spec.get('entrypoint', 'workflow')}-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
        run_dir = self.workdir / name
        run_dir.mkdir(parents=True, exist_ok=True)
        runs = {n: TaskRun(n, t.template["name"]) for n, t in tasks.items()}
        result = WorkflowRun(name, runs, time.time(), workdir=run_dir)
        workers = int(spec.get("parallelism") or os.cpu_count() or 2)
        stop = False
        futures: dict[Future[None], str] = {}
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="task") as pool:
            try:
                while True:
                    for n in self._ready(tasks, runs, futures.values()) if not stop else []:
                        ctx = {"workflow": params, "workflow.name": name, "tasks": runs}
                        futures[pool.submit(self._run_task, tasks[n], runs[n], ctx, run_dir / n)] = n
                    if not futures:
                        break
                    done, _ = wait(futures, return_when=FIRST_COMPLETED)
                    for f in done:
                        f.result()
                        if runs[futures.pop(f)].phase is TaskPhase.FAILED:
                            stop = True  # failFast: finish what runs, start nothing new
            finally:
                self._kill_all()
        for r in runs.values():
            if r.phase is TaskPhase.PENDING:
                r.phase = TaskPhase.OMITTED
                self.on_change(r)
        result.finished = time.time()
        return result

    def _ready(self, tasks: dict[str, _Task], runs: dict[str, TaskRun], running: Any) -> list[str]:
        busy = set(running)
        ready = []
        for n, t in tasks.items():
            if runs[n].phase is not TaskPhase.PENDING or n in busy:
                continue
            phases = {d: runs[d].phase.value for d in t.deps}
            if any(p in {TaskPhase.PENDING.value, TaskPhase.RUNNING.value} for p in phases.values()):
                continue
            met = all(p in {"Succeeded", "Skipped"} for p in phases.values())
            if t.depends:
                met = evaluate_depends(t.depends, phases) and all(p != "Omitted" for p in phases.values())
            if met:
                ready.append(n)
            else:
                runs[n].phase = TaskPhase.OMITTED
                runs[n].message = "a dependency did not succeed"
                self.on_change(runs[n])
        return ready

    def _run_task(self, task: _Task, run: TaskRun, ctx: dict[str, Any], task_dir: Path) -> None:
        try:
            args = {k: _substitute(v, ctx, f"task {task.name}") for k, v in task.arguments.items()}
            if task.when is not None:
                condition = _substitute(task.when, ctx, f"task {task.name} when")
                if not evaluate_when(condition):
                    run.phase, run.message = TaskPhase.SKIPPED, f"when '{condition}' is false"
                    self.on_change(run)
                    return
            inputs = _inputs(task, args)
        except (ValueError, KeyError) as exc:  # bad references, bad conditions: a failed task
            run.phase, run.message = TaskPhase.FAILED, str(exc)
            run.started = run.finished = time.time()
            self.on_change(run)
            return
        retry = task.template.get("retryStrategy", {})
        limit = int(retry.get("limit", 0)) if retry else 0
        policy = retry.get("retryPolicy", "OnFailure")
        run.started = time.time()
        run.phase = TaskPhase.RUNNING
        self.on_change(run)
        for attempt in range(limit + 1):
            run.attempts = attempt + 1
            outcome = self._attempt(task, run, inputs, task_dir / f"attempt-{attempt + 1}")
            if outcome == "ok":
                run.phase = TaskPhase.SUCCEEDED
                break
            retryable = policy == "Always" or (policy == "OnFailure") == (outcome == "failure")
            if attempt == limit or not retryable:
                run.phase = TaskPhase.FAILED
                break
            time.sleep(_backoff(retry.get("backoff"), attempt))
        run.finished = time.time()
        self.on_change(run)

    def _attempt(self, task: _Task, run: TaskRun, inputs: dict[str, str], adir: Path) -> str:
        """One attempt: 'ok', 'failure' (the program failed) or 'error' (it could not run)."""
        script = task.template["script"]
        adir.mkdir(parents=True, exist_ok=True)
        outputs_dir = adir / "outputs"
        env = {**os.environ, **self.env}
        declared_outputs_dir = None
        for e in script.get("env", []):
            env[e["name"]] = e.get("value", "")
            if e["name"] == "hera__outputs_directory":
                declared_outputs_dir = e.get("value", "")
        # Argo gives each pod a private /tmp; here the declared outputs directory is per attempt.
        env["hera__outputs_directory"] = str(outputs_dir)
        source = _substitute_inputs(script.get("source", ""), inputs)
        source_file = adir / "source"
        source_file.write_text(source)
        command = [self.python if c in {"python", "python3"} else c for c in script.get("command", [])]
        argv = command + list(script.get("args", [])) + ([str(source_file)] if "source" in script else [])
        deadline = task.template.get("activeDeadlineSeconds")
        stdout_path, stderr_path = adir / "stdout", adir / "stderr"
        try:
            limit = float(deadline) if deadline else None
            code = self._spawn(run, argv, env, stdout_path, stderr_path, limit)
        except OSError as exc:
            run.message = f"could not start {argv[0]!r}: {exc.strerror}"
            return "error"
        run.stderr = stderr_path.read_text(errors="replace")
        stdout = stdout_path.read_text(errors="replace")
        if code is None:
            run.message = f"exceeded activeDeadlineSeconds ({deadline}s) and was killed"
            return "failure"
        if code != 0:
            tail = "\n".join(run.stderr.strip().splitlines()[-40:])
            run.message = f"exit code {code}" + (f"\n{tail}" if tail else "")
            return "failure"
        run.result = stdout.rstrip("\n")
        for p in task.template.get("outputs", {}).get("parameters", []):
            vf = p.get("valueFrom", {})
            path = Path(vf["path"])
            if declared_outputs_dir and vf["path"].startswith(declared_outputs_dir):
                path = outputs_dir / Path(vf["path"]).relative_to(declared_outputs_dir)
            if path.exists():
                run.outputs[p["name"]] = path.read_text()
            elif "default" in vf:
                run.outputs[p["name"]] = str(vf["default"])
            else:
                run.message = f"output parameter {p['name']!r}: {vf['path']} was not written"
                return "failure"
        return "ok"

    def _spawn(
        self,
        run: TaskRun,
        argv: list[str],
        env: dict[str, str],
        stdout: Path,
        stderr: Path,
        deadline: float | None,
    ) -> int | None:
        """Run one attempt's process to its end: its exit code, or None when its deadline killed it.

        A Hera runner step is forked warm when it can be (`warm`), else started cold."""
        proc: warm.WarmProcess | subprocess.Popen[bytes] | None = None
        if self.warm.eligible(argv):
            cwd = str(Path.cwd())
            status = str(stdout.parent / "exit-status")
            proc = self.warm.start(warm.Launch(argv[2], argv[3:], env, cwd, str(stdout), str(stderr), status))
        run.warm = isinstance(proc, warm.WarmProcess)
        if proc is None:
            with stdout.open("wb") as out, stderr.open("wb") as err:
                proc = subprocess.Popen(argv, stdout=out, stderr=err, env=env, start_new_session=True)
        with self._lock:
            self._procs.add(proc)
        try:
            if isinstance(proc, warm.WarmProcess):
                code = proc.wait(deadline)
            else:
                try:
                    code = proc.wait(timeout=deadline)
                except subprocess.TimeoutExpired:
                    code = None
            if code is None:
                proc.kill()
                proc.wait()
            return code
        finally:
            with self._lock:
                self._procs.discard(proc)

    def _kill_all(self) -> None:
        """Stop every task process still running (Ctrl-C, or an error in the executor)."""
        with self._lock:
            procs = list(self._procs)
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()


def dependency_graph(tasks: dict[str, _Task]) -> dict[str, set[str]]:
    """Task name -> names of the tasks it waits for."""
    return {n: set(t.deps) for n, t in tasks.items()}


def _only(obj: dict[str, Any], supported: set[str], ignored: set[str], where: str) -> None:
    for key in obj:
        if key not in supported and key not in ignored:
            raise UnsupportedFeature(f"{where}: '{key}' is not supported by the local executor")


def _ancestors(tasks: dict[str, _Task], name: str) -> set[str]:
    seen, todo = set(), [name]
    while todo:
        n = todo.pop()
        if n not in seen:
            seen.add(n)
            todo.extend(tasks[n].deps)
    return seen


def _inputs(task: _Task, args: dict[str, str]) -> dict[str, str]:
    values: dict[str, str] = {}
    declared = task.template.get("inputs", {}).get("parameters", [])
    for p in declared:
        if p["name"] in args:
            values[p["name"]] = args[p["name"]]
        elif "value" in p:
            values[p["name"]] = str(p["value"])
        elif "default" in p:
            values[p["name"]] = str(p["default"])
        else:
            raise ValueError(f"task {task.name}: input parameter {p['name']!r} has no value")
        if p.get("enum") and values[p["name"]] not in map(str, p["enum"]):
            raise ValueError(f"task {task.name}: {p['name']}={values[p['name']]!r} is not one of {p['enum']}")
    unknown = set(args) - {p["name"] for p in declared}
    if unknown:
        raise ValueError(
            f"task {task.name}: template {task.template['name']} has no input(s) {sorted(unknown)}"
        )
    return values


def _substitute(text: str, ctx: dict[str, Any], where: str) -> str:
    """Replace Argo `{{...}}` variables in a task's arguments or condition."""

    def value(m: re.Match[str]) -> str:
        ref = m.group(1)
        parts = ref.split(".")
        if ref.startswith("="):
            raise ValueError(f"{where}: expression templates '{{{{{ref}}}}}' are not supported locally")
        if parts[:2] == ["workflow", "parameters"] and len(parts) == 3:
            if parts[2] not in ctx["workflow"]:
                raise ValueError(f"{where}: unknown workflow parameter {parts[2]!r}")
            return str(ctx["workflow"][parts[2]])
        if ref == "workflow.name":
            return str(ctx["workflow.name"])
        if parts[0] == "tasks" and len(parts) >= 4 and parts[2] == "outputs":
            run: TaskRun | None = ctx["tasks"].get(parts[1])
            if run is None:
                raise ValueError(f"{where}: '{{{{{ref}}}}}' refers to a task that is not part of this run")
            if parts[3] == "result" and len(parts) == 4:
                if run.result is None:
                    raise ValueError(f"{where}: task {parts[1]} has no result (did it run?)")
                return run.result
            if parts[3] == "parameters" and len(parts) == 5:
                if parts[4] not in run.outputs:
                    raise ValueError(f"{where}: task {parts[1]} has no output parameter {parts[4]!r}")
                return run.outputs[parts[4]]
        raise ValueError(f"{where}: variable '{{{{{ref}}}}}' is not supported by the local executor")

    return _VAR.sub(value, text)


def _substitute_inputs(source: str, inputs: dict[str, str]) -> str:
    """Substitute `{{inputs.parameters}}` (a JSON list, as Argo does) and `{{inputs.parameters.X}}`."""
    listing = json.dumps([{"name": k, "value": v} for k, v in inputs.items()])

    def value(m: re.Match[str]) -> str:
        ref = m.group(1)
        if ref == "inputs.parameters":
            return listing
        if ref.startswith("inputs.parameters.") and ref.split(".", 2)[2] in inputs:
            return inputs[ref.split(".", 2)[2]]
        return m.group(0)

    return _VAR.sub(value, source)


def _backoff(backoff: dict[str, Any] | None, attempt: int) -> float:
    if not backoff:
        return 0.0
    base = _seconds(backoff.get("duration", "0"))
    delay = base * float(backoff.get("factor", 1)) ** attempt
    cap = backoff.get("maxDuration")
    return min(delay, _seconds(cap)) if cap else delay


def _seconds(value: Any) -> float:
    text = str(value).strip()
    m = re.fullmatch(r"(\d+(?:\.\d+)?)(ms|s|m|h)?", text)
    if not m:
        raise UnsupportedFeature(f"duration {text!r}")
    scale = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, None: 1}[m.group(2)]
    return float(m.group(1)) * scale
