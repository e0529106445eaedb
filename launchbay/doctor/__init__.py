"""`launchbay doctor`: the environment a command will need, checked before the command fails on it.

Each check says what it found and, when something is wrong, what to do. Nothing here writes: a
missing ledger database or state directory is what the first command creates, not a problem.
Checks that need a project (ports, keys, MLflow, ledger, the cluster's endpoints) run when a
`launchbay.yaml` is found; the machine's own (Python, packages, the `prometheus` binary) always.
"""

from __future__ import annotations

import getpass
import os
import shutil
import stat
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path
from typing import Literal

from launchbay import procs
from launchbay.config import LaunchbayConfig
from launchbay.errors import LaunchbayError
from launchbay.home import Home

Status = Literal["ok", "warn", "fail", "skip"]
SUPPORTED_PLATFORMS = {"linux": "Linux", "darwin": "macOS"}


@dataclass(frozen=True)
class Finding:
    """One check's outcome: `fix` says what to do when the status is not ok."""

    check: str
    status: Status
    detail: str
    fix: str = ""

    def to_dict(self) -> dict[str, str]:
        return asdict(self)


def examine(cfg: LaunchbayConfig | None, home: Home | None, *, timeout: float = 3.0) -> list[Finding]:
    """Every check that applies; `cfg` None: the machine's checks only."""
    checks: list[tuple[str, Callable[[], Iterator[Finding]]]] = [
        ("python", _python), ("packages", _packages), ("prometheus", lambda: _prometheus(cfg, timeout))]
    if cfg is not None and home is not None:
        checks += [
            ("gateway port", lambda: _ports(cfg)),
            ("keys", lambda: _keys(cfg, home)),
            ("mlflow", lambda: _mlflow(cfg, home)),
            ("ledger", lambda: _ledger(cfg, home, timeout)),
            ("cluster", lambda: _cluster(cfg, timeout)),
        ]
    found: list[Finding] = []
    for name, check in checks:
        try:
            found += list(check())
        except LaunchbayError as exc:  # a check that cannot decide says why, the others still run
            found.append(Finding(name, "fail", exc.message))
    return found


def _python() -> Iterator[Finding]:
    from packaging.specifiers import SpecifierSet

    text = ".".join(map(str, sys.version_info[:3]))
    try:  # what pyproject's requires-python says, as installed
        wanted = SpecifierSet(metadata.metadata("launchbay")["Requires-Python"] or "")
    except metadata.PackageNotFoundError:
        wanted = SpecifierSet()  # not installed: the packages check says so
    if not wanted.contains(text):
        yield Finding("python", "fail", f"Python {text} ({sys.executable}) is not {wanted}",
                      f"make a virtual environment with a Python {wanted} and install launchbay in it")
    else:
        yield Finding("python", "ok", f"Python {text} ({sys.executable})")
    platform = SUPPORTED_PLATFORMS.get(sys.platform)
    if platform is None:
        yield Finding("platform", "warn", f"{sys.platform} is not a supported platform (Linux, macOS)",
                      "run launchbay on Linux or macOS (on Windows: in WSL 2)")
    else:
        yield Finding("platform", "ok", platform)


def _packages() -> Iterator[Finding]:
    """launchbay's own requirements are installed, at versions it accepts."""
    from packaging.requirements import Requirement

    try:
        wanted = metadata.requires("launchbay") or []
    except metadata.PackageNotFoundError:
        yield Finding("packages", "fail", "launchbay is not installed as a distribution (its sources run)",
                      "pip install -e . (in the repository) or pip install launchbay")
        return
    wrong: list[str] = []
    for line in wanted:
        req = Requirement(line)
        if req.marker is not None and not req.marker.evaluate({"extra": ""}):
            continue  # an extra's requirement, or one for another platform
        try:
            have = metadata.version(req.name)
        except metadata.PackageNotFoundError:
            wrong.append(f"{req.name} is missing (wants {req.specifier or 'any'})")
            continue
        if req.specifier and not req.specifier.contains(have, prereleases=True):
            wrong.append(f"{req.name} {have} (wants {req.specifier})")
    version = metadata.version("launchbay")
    if wrong:
        yield Finding("packages", "fail", f"launchbay {version}: " + "; ".join(wrong),
                      "pip install -c constraints.txt -e . in the repository, or pip install --upgrade "
                      "launchbay: the versions it was tested with")
    else:
        yield Finding("packages", "ok", f"launchbay {version}: its {len(wanted)} requirements are met")


def _install_hint(package: str) -> str:
    if sys.platform == "darwin":
        return f"brew install {package}"
    if Path("/etc/debian_version").exists():  # Debian, Ubuntu (PATH may not hold apt-get here)
        return f"sudo apt-get install {package}"
    return f"install {package} with your system's package manager"


def _prometheus(cfg: LaunchbayConfig | None, timeout: float) -> Iterator[Finding]:
    """The local target starts Prometheus itself unless rollout.prometheus_url names one."""
    if cfg is not None and cfg.rollout.prometheus_url:
        url = cfg.rollout.prometheus_url.rstrip("/")
        yield _reachable("prometheus", f"{url}/-/ready", timeout,
                         "start it, or correct rollout.prometheus_url in launchbay.yaml")
        return
    if cfg is not None and cfg.rollout.target != "local":
        yield Finding("prometheus", "skip", f"rollout.target {cfg.rollout.target}: the cluster's Prometheus "
                      "(rollout.prometheus_url) is read, none is started here")
        return
    binary = shutil.which("prometheus")
    if binary is None:
        yield Finding("prometheus", "fail", "no `prometheus` binary on PATH: the local target cannot "
                      "measure a release (SLOs, analysis)",
                      f"{_install_hint('prometheus')}, or set rollout.prometheus_url to an existing server")
        return
    try:
        out = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=10, check=False)
        said = (out.stdout or out.stderr).strip()
        first = said.splitlines()[0] if said else "?"
    except (OSError, subprocess.SubprocessError) as exc:
        yield Finding("prometheus", "fail", f"{binary} does not run: {exc}",
                      f"reinstall it: {_install_hint('prometheus')}")
        return
    yield Finding("prometheus", "ok", f"{binary}: {first}")


def _ports(cfg: LaunchbayConfig) -> Iterator[Finding]:
    port = cfg.rollout.gateway_port
    if cfg.rollout.target != "local":
        return
    if port is None:
        yield Finding("gateway port", "ok", "chosen free at the first release, then kept")
        return
    if procs.port_free(port):
        yield Finding("gateway port", "ok", f"rollout.gateway_port {port} is free")
        return
    holder = procs.listener(port)
    name = ""
    if holder is not None:
        try:
            cmdline = " ".join(holder.cmdline())
            name = f"{holder.name()} (pid {holder.pid})"
        except Exception:  # gone meanwhile, or not ours to read
            cmdline, name = "", f"pid {holder.pid}"
        if "launchbay.rollout.local" in cmdline:
            yield Finding("gateway port", "ok", f"rollout.gateway_port {port}: launchbay's gateway ({name})")
            return
    who = f"held by {name}" if name else "not free"
    yield Finding("gateway port", "fail", f"rollout.gateway_port {port} is {who}",
                  f"stop {name or 'the program holding it'}, or set rollout.gateway_port in "
                  f"{cfg.source or 'launchbay.yaml'} to a free port (or remove it: one is chosen)")


def _mode_problem(path: Path) -> str:
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        return f"{path} is readable by others (mode {mode:04o})"
    return ""


def _keys(cfg: LaunchbayConfig, home: Home) -> Iterator[Finding]:
    from launchbay.checks.approvals import approvers_dir
    from launchbay.checks.keys import keys_dir, signing_key, trusted_keys

    private = signing_key(cfg, home)
    if not private.exists():
        yield Finding("signing key", "warn", f"no signing key at {private}: a run stops at its sign step",
                      "launchbay keys init (or set LAUNCHBAY_SIGNING_KEY / signing.private_key)")
    elif problem := _mode_problem(private):
        yield Finding("signing key", "fail", f"private key {problem}: anyone on this machine can sign models",
                      f"chmod 600 {private}")
    else:
        yield Finding("signing key", "ok", f"{private} (0600)")
    missing = [str(k) for k in trusted_keys(cfg, home) if not k.exists()]
    if missing and private.exists():
        yield Finding("trusted keys", "fail", "public keys not found: " + ", ".join(missing),
                      "launchbay keys init writes the local one; or correct signing.trusted_keys")
    # Every other private key launchbay keeps: the witness key, approvers' keys of this person.
    others = sorted(keys_dir(home).glob("*.pem")) if keys_dir(home).is_dir() else []
    approvers = approvers_dir()
    others += sorted(approvers.glob("*.pem")) if approvers.is_dir() else []
    for key in others:
        if key == private:
            continue
        if problem := _mode_problem(key):
            yield Finding("private keys", "fail", problem, f"chmod 600 {key}")


def _mlflow(cfg: LaunchbayConfig, home: Home) -> Iterator[Finding]:
    from launchbay.registry import preflight, tracking_uri

    uri = tracking_uri(cfg, home)
    if uri.startswith("sqlite:///") and not home.root.exists():
        yield Finding("mlflow", "ok", f"{uri} (created by the first run)")
        return
    try:
        preflight(cfg, home)
    except LaunchbayError as exc:
        yield Finding("mlflow", "fail", exc.message,
                      "start the tracking server, or set mlflow.tracking_uri / MLFLOW_TRACKING_URI")
        return
    yield Finding("mlflow", "ok", uri)


def _ledger(cfg: LaunchbayConfig, home: Home, timeout: float) -> Iterator[Finding]:
    from launchbay.rollout.ledger.store import LEDGER_ENV, SqlLedger

    url = cfg.rollout.ledger_url or os.environ.get(LEDGER_ENV)
    if not url:
        db = SqlLedger.default_path(home)
        where = db if db.exists() else db.parent if db.parent.exists() else home.root.parent
        if not os.access(where, os.W_OK):
            yield Finding("ledger", "fail", f"{where} is not writable: no decision could be recorded",
                          f"make {where} writable by {getpass.getuser()}, or set LAUNCHBAY_HOME elsewhere")
            return
        later = "" if db.exists() else " (created by the first release)"
        yield Finding("ledger", "ok", f"SQLite {db}{later}")
        return
    import sqlalchemy as sa

    shown = sa.engine.make_url(url).render_as_string(hide_password=True)
    args = {"connect_timeout": int(max(1, timeout))} if url.startswith("postgresql") else {}
    engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1), connect_args=args)
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        yield Finding("ledger", "fail", f"{shown}: {first}",
                      "start the database, or correct rollout.ledger_url / LAUNCHBAY_LEDGER_URL")
        return
    finally:
        engine.dispose()
    yield Finding("ledger", "ok", shown)


def _reachable(check: str, url: str, timeout: float, fix: str, headers: dict[str, str] | None = None
               ) -> Finding:
    import httpx

    try:
        resp = httpx.get(url, timeout=timeout, headers=headers or {})
    except httpx.HTTPError as exc:
        return Finding(check, "fail", f"{url} is unreachable ({type(exc).__name__}: {exc})", fix)
    if resp.status_code >= 400:
        return Finding(check, "fail", f"{url} answered HTTP {resp.status_code}", fix)
    return Finding(check, "ok", f"{url} answered HTTP {resp.status_code}")


def _cluster(cfg: LaunchbayConfig, timeout: float) -> Iterator[Finding]:
    """Argo and Kubernetes, when this project uses them (a cluster target, or $ARGO_SERVER)."""
    argo = os.environ.get("ARGO_SERVER")
    if argo:
        token = os.environ.get("ARGO_TOKEN", "")
        bearer = token if token.startswith("Bearer ") else f"Bearer {token}"
        headers = {"Authorization": bearer} if token else {}
        yield _reachable("argo", argo.rstrip("/") + "/api/v1/version", timeout,
                         "check ARGO_SERVER and ARGO_TOKEN (argo auth token)", headers)
    if cfg.rollout.target not in ("kubernetes", "knative"):
        return
    try:
        from kubernetes import client, config

        config.load_kube_config()  # type: ignore[no-untyped-call]
        api = client.VersionApi()
        info = api.get_code(_request_timeout=timeout)
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        yield Finding("kubernetes", "fail", f"the cluster's API server cannot be used: {first}",
                      "set KUBECONFIG or `kubectl config use-context` to the cluster launchbay releases to")
        return
    yield Finding("kubernetes", "ok", f"API server {info.git_version}")
