"""Measure one version as a server: cold start, latency under load, throughput within the SLO,
memory and package size -- the numbers `launchbay advise` decides with.

The server is started the way the local target starts it (verified first, its own BENTOML_HOME),
measured by a load client in this process (the server is another process), then stopped.
Results go to `<state>/measurements/<model>-v<N>.json` and onto the MLflow version as tags.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import statistics
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx

from launchbay import procs
from launchbay.config import LaunchbayConfig
from launchbay.errors import PipelineFailed
from launchbay.home import Home

LEVELS = (1, 4, 8)


@dataclass
class Level:
    """Latency and throughput at one concurrency."""

    concurrency: int
    rps: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    errors: int


@dataclass
class Measured:
    """Everything measured for one version."""

    model: str
    version: str
    cold_start_s: float
    levels: list[Level]
    max_rps_within_slo: float
    memory_mb: float
    package_mb: float
    slo_p95_ms: float
    measured_at: float
    runtime: str = "bentoml"
    """The server measured: `bentoml` or `lean` (the ONNX variant where the model has one)."""

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Measured:
        """Parse the JSON form."""
        return cls(**{**d, "levels": [Level(**x) for x in d["levels"]]})


def path(home: Home, model: str, version: str, runtime: str = "bentoml") -> Path:
    """Where a version's measurements on a runtime are kept."""
    return home.root / "measurements" / f"{model}-v{version}-{runtime}.json"


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def _load(url: str, rows: list[dict[str, Any]], concurrency: int, seconds: float) -> Level:
    latencies: list[float] = []
    errors = 0
    deadline = time.perf_counter() + seconds

    async def worker(i: int) -> None:
        nonlocal errors
        async with httpx.AsyncClient(timeout=10) as client:
            n = i
            while time.perf_counter() < deadline:
                body = {"row": rows[n % len(rows)]}
                n += concurrency
                t0 = time.perf_counter()
                try:
                    r = await client.post(url, json=body)
                    ok = r.status_code == 200
                except httpx.HTTPError:
                    ok = False
                if ok:
                    latencies.append((time.perf_counter() - t0) * 1000)
                else:
                    errors += 1

    started = time.perf_counter()
    await asyncio.gather(*(worker(i) for i in range(concurrency)))
    elapsed = time.perf_counter() - started
    return Level(
        concurrency=concurrency,
        rps=round(len(latencies) / elapsed, 1),
        p50_ms=round(statistics.median(latencies), 2) if latencies else float("nan"),
        p95_ms=round(_pct(latencies, 0.95), 2),
        p99_ms=round(_pct(latencies, 0.99), 2),
        errors=errors,
    )


def _rss_mb(pid: int) -> float:
    """Resident memory of a process and its descendants."""
    import psutil

    try:
        root = psutil.Process(pid)
        tree = [root, *root.children(recursive=True)]
    except psutil.Error:
        return 0.0
    total = 0
    for proc in tree:
        with contextlib.suppress(psutil.Error):  # one ended meanwhile
            total += proc.memory_info().rss
    return round(total / 2**20, 1)


def _size_mb(directory: Path) -> float:
    return round(sum(f.stat().st_size for f in directory.rglob("*") if f.is_file()) / 2**20, 2)


def dependencies_mb(roots: list[str]) -> float:
    """Installed size of Python distributions and everything they require (what a package ships)."""
    import re
    from importlib import metadata

    seen: set[str] = set()
    todo = [re.split(r"[<>=!~\[; ]", r, maxsplit=1)[0].lower() for r in roots]
    total = 0
    while todo:
        name = todo.pop()
        if not name or name in seen:
            continue
        seen.add(name)
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        for f in dist.files or []:
            with contextlib.suppress(OSError):
                total += Path(str(f.locate())).stat().st_size
        for req in dist.requires or []:
            if "extra ==" not in req:  # optional extras are not installed with the service
                todo.append(re.split(r"[<>=!~\[; (]", req, maxsplit=1)[0].lower())
    return round(total / 2**20, 1)


LEAN_PACKAGES = [
    "onnxruntime", "numpy", "uvicorn", "uvloop", "httptools", "cryptography", "prometheus-client"
]  # fmt: skip
"""What the lean runtime ships on its ONNX path (a native model adds its own library)."""


def measure(
    cfg: LaunchbayConfig,
    home: Home,
    version: str,
    rows: list[dict[str, Any]],
    seconds: float = 5.0,
    runtime: str | None = None,
) -> Measured:
    """Start the version's server on `runtime` (default: `serving.runtime`), measure it, stop it;
    store and return the measurements.

    Raises:
        PipelineFailed: the version does not verify or its server does not start.
    """
    from launchbay.serving import package
    from launchbay.serving.deploy import prepare_serve
    from launchbay.serving.lean_model import has_variant

    model = cfg.model.name
    port = procs.free_port()
    command = prepare_serve(cfg, home, f"{model}@{version}", "127.0.0.1", port, runtime)  # type: ignore[arg-type]
    env = command.env
    with tempfile.TemporaryDirectory(prefix="launchbay-measure-") as tmp:
        own = Path(tmp) / "bentoml"
        own.mkdir()
        shared = package.bentoml_home(home)
        for store in ("bentos", "models"):
            (own / store).symlink_to(shared / store, target_is_directory=True)
        env["BENTOML_HOME"] = str(own)  # its own metrics directory: running servers are untouched
        url = f"http://127.0.0.1:{port}/predict"
        t0 = time.perf_counter()
        log = Path(tmp) / "server.log"
        pid = procs.start(command.argv, env, log, cwd=command.cwd, owner=f"{home.root}#measure")
        try:
            cold = _first_answer(url, rows[0], pid, t0, Path(tmp) / "server.log")
            asyncio.run(_load(url, rows, 4, 2.0))  # warm-up
            levels = [asyncio.run(_load(url, rows, c, seconds)) for c in LEVELS]
            memory = _rss_mb(pid)
        finally:
            procs.stop(pid)
    slo = cfg.rollout.slo.p95_latency_ms
    within = [lv.rps for lv in levels if lv.p95_ms <= slo and lv.errors == 0]
    bento = shared / "bentos" / model / f"v{version}"
    stored_model = shared / "models" / model / f"v{version}"
    # What a deployment ships: the Bento (code), the model files and the Python dependencies.
    shipped = (_size_mb(bento) if bento.exists() else 0.0) + (
        _size_mb(stored_model) if stored_model.exists() else 0.0
    )
    lean_onnx = command.runtime == "lean" and has_variant(package.signed_dir(stored_model))
    shipped += dependencies_mb(LEAN_PACKAGES if lean_onnx else package.SERVICE_PACKAGES)
    result = Measured(
        model=model,
        version=str(version),
        cold_start_s=round(cold, 2),
        levels=levels,
        max_rps_within_slo=max(within) if within else 0.0,
        memory_mb=memory,
        package_mb=round(shipped, 1),
        slo_p95_ms=slo,
        measured_at=time.time(),
        runtime=command.runtime,
    )
    target = path(home, model, version, command.runtime)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(result.to_dict(), indent=2))
    _tag(cfg, home, result)
    return result


def _first_answer(url: str, row: dict[str, Any], pid: int, t0: float, log: Path) -> float:
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if not procs.alive(pid):
            raise PipelineFailed(f"the server died while starting:\n{procs.tail(log)}")
        try:
            if httpx.post(url, json={"row": row}, timeout=5).status_code == 200:
                return time.perf_counter() - t0
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise PipelineFailed("the server did not answer within 180 s")


def _tag(cfg: LaunchbayConfig, home: Home, m: Measured) -> None:
    """Put the headline numbers on the MLflow model version (tags: visible in the registry UI)."""
    from launchbay.registry import MlflowRegistry

    registry = MlflowRegistry(cfg, home)
    level1 = m.levels[0]
    for key, value in {
        "cold_start_s": m.cold_start_s,
        "p95_ms_c1": level1.p95_ms,
        "max_rps_within_slo": m.max_rps_within_slo,
        "memory_mb": m.memory_mb,
        "package_mb": m.package_mb,
    }.items():
        prefix = "launchbay.measure." if m.runtime == "bentoml" else f"launchbay.measure.{m.runtime}."
        registry.tag(m.model, m.version, prefix + key, str(value))


def load(home: Home, model: str, version: str, runtime: str = "bentoml") -> Measured | None:
    """Stored measurements of a version on a runtime, or None."""
    p = path(home, model, version, runtime)
    return Measured.from_dict(json.loads(p.read_text())) if p.exists() else None


EDGE_CALLS = """
import json, statistics, sys, time
from launchbay.serving.edge import load
model = load("model", [sys.argv[1]])
rows = json.loads(sys.argv[2])
for r in rows[:50]:
    model.predict({"row": r})
times = []
for i in range(int(sys.argv[3])):
    t0 = time.perf_counter()
    model.predict({"row": rows[i % len(rows)]})
    times.append((time.perf_counter() - t0) * 1000)
times.sort()
print(json.dumps({"p50_ms": statistics.median(times), "p95_ms": times[int(0.95 * len(times))]}))
"""


def edge_path(home: Home, model: str, version: str) -> Path:
    """Where a version's edge measurements are kept."""
    return home.root / "measurements" / f"{model}-v{version}-edge.json"


def measure_edge(
    cfg: LaunchbayConfig, home: Home, version: str, rows: list[dict[str, Any]], calls: int = 2000
) -> dict[str, float]:
    """Build the version's edge bundle and measure it as a device would run it: its size, the cold
    start of one call from a fresh process, and one local call's latency (rows from the data).

    Raises:
        PipelineFailed: the version does not verify or the bundle does not answer.
        UsageError: the version has no ONNX variant (no edge bundle).

    Returns:
        The fields of `advise.EdgeFacts` (bundle and dependency sizes, p50/p95 of a call, cold start).
    """
    import subprocess
    import sys

    from launchbay.serving.deploy import verified_bento
    from launchbay.serving.function_package import LEAN, _installed_mb, edge_bundle

    model = cfg.model.name
    b = verified_bento(cfg, home, f"{model}@{version}", doing="measure")
    env = {"PATH": "/usr/bin:/bin"}  # the bundle's own code only, as on a device
    with tempfile.TemporaryDirectory(prefix="launchbay-edge-") as tmp:
        pkg = edge_bundle(b.src, b.signed, Path(tmp), f"{model}-v{version}")
        key = str(b.keys[0].resolve())
        t0 = time.perf_counter()
        once = subprocess.run(
            [sys.executable, "-m", "launchbay.serving.edge", "--trusted-key", key,
             "--row", json.dumps(rows[0])],
            cwd=pkg.directory, env=env, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        cold = time.perf_counter() - t0
        if once.returncode != 0:
            raise PipelineFailed(f"the edge bundle did not answer: {once.stderr.strip()[-500:]}")
        timed = subprocess.run(
            [sys.executable, "-c", EDGE_CALLS, key, json.dumps(rows), str(calls)],
            cwd=pkg.directory, env=env, capture_output=True, text=True, timeout=600,
        )  # fmt: skip
        if timed.returncode != 0:
            raise PipelineFailed(f"the edge bundle failed under calls: {timed.stderr.strip()[-500:]}")
        latency = json.loads(timed.stdout)
        facts = {
            "bundle_mb": pkg.sizes_mb["archive"],
            "dependencies_mb": _installed_mb(LEAN),
            "p50_ms": round(latency["p50_ms"], 4),
            "p95_ms": round(latency["p95_ms"], 4),
            "cold_start_s": round(cold, 3),
        }
    target = edge_path(home, model, version)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(facts, indent=2))
    return facts


def load_edge(home: Home, model: str, version: str) -> dict[str, float] | None:
    """Stored edge measurements of a version (the fields of `advise.EdgeFacts`), or None."""
    p = edge_path(home, model, version)
    if not p.exists():
        return None
    doc: dict[str, float] = json.loads(p.read_text())
    return doc
