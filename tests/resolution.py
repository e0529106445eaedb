"""Whether launchbay's pinned dependency set installs on a Python and platform this machine is not.

pip's own finder decides which wheel a pin installs (`pip install --dry-run --report --no-deps`
with `--python-version`, `--platform` and `--only-binary :all:`: a wheel must exist for the
target and admit its Python; nothing is built or downloaded beyond metadata). pip evaluates
environment markers against the *running* interpreter, not the target (its report says so under
"environment": a full `--platform macosx_…` resolution on Linux pulls xgboost's
`nvidia-nccl-cu12; platform_system == "Linux"`), so dependencies are followed here instead, with
markers evaluated for the target: requirements, constraints.txt lines and each wheel's
Requires-Dist. As constraints.txt pins every package, resolving is then checking: every package
the target needs has a wheel, and every pin satisfies every requirement on it.

Used by tests/unit/ci/test_wheels.py and runnable by hand:
``python tests/resolution.py [PYTHON [PLATFORM ...]]``.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import tomllib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
PYTHONS = ("3.11", "3.12", "3.13")


@dataclass(frozen=True)
class Platform:
    """A platform as pip's `--platform` tags and as marker values."""

    name: str
    tags: tuple[str, ...]
    sys_platform: str
    platform_system: str
    platform_machine: str


def _manylinux(arch: str) -> tuple[str, ...]:
    # pip does not expand manylinux_2_X tags downwards for a custom platform: list the glibc
    # levels wheels on PyPI are tagged with, newest (AlmaLinux 8 / Ubuntu 20.04: 2.28) to oldest.
    levels = ("2_28", "2_27", "2_26", "2_24", "2_17", "2_12", "2_5")
    legacy = ("manylinux2014", "manylinux2010", "manylinux1") if arch == "x86_64" else ("manylinux2014",)
    return tuple(f"manylinux_{level}_{arch}" for level in levels) + tuple(f"{tag}_{arch}" for tag in legacy)


# macOS tags are expanded by pip itself (macosx_14_0_arm64 accepts 11.0 ... 14.0 and universal2).
PLATFORMS = {
    p.name: p
    for p in (
        Platform("linux-x86_64", _manylinux("x86_64"), "linux", "Linux", "x86_64"),
        Platform("linux-aarch64", _manylinux("aarch64"), "linux", "Linux", "aarch64"),
        Platform("macos-arm64", ("macosx_14_0_arm64",), "darwin", "Darwin", "arm64"),
        Platform("macos-x86_64", ("macosx_14_0_x86_64",), "darwin", "Darwin", "x86_64"),
    )
}


def environment(python: str, platform: Platform) -> dict[str, str]:
    """The marker environment of a CPython `python` on `platform`."""
    env = dict(default_environment())
    env.update(
        python_version=python,
        python_full_version=f"{python}.0",
        implementation_name="cpython",
        implementation_version=f"{python}.0",
        platform_python_implementation="CPython",
        sys_platform=platform.sys_platform,
        platform_system=platform.platform_system,
        platform_machine=platform.platform_machine,
        os_name="posix",
        platform_release="",
        platform_version="",
    )
    return env


def requirements(*, dev: bool = True) -> list[Requirement]:
    """launchbay's own requirements with every extra a user or the tests install."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    lines = list(project["dependencies"])
    extras = project["optional-dependencies"]
    for name in ("xgboost", "lightgbm", "aws") + (("dev",) if dev else ()):
        lines += [line for line in extras[name] if not line.startswith("launchbay")]
    return [Requirement(line) for line in lines]


def constraints() -> list[Requirement]:
    """constraints.txt, comments and blank lines left out."""
    out = []
    for raw in (ROOT / "constraints.txt").read_text().splitlines():
        line = raw.split(" #")[0].strip()
        if line and not line.startswith("#"):
            out.append(Requirement(line))
    return out


def _applies(req: Requirement, env: dict[str, str], extras: frozenset[str] = frozenset()) -> bool:
    if req.marker is None:
        return True
    return any(req.marker.evaluate({**env, "extra": extra}) for extra in (extras or {""}))


def _bare(req: Requirement) -> str:
    """The requirement without its marker: pip would evaluate it against the host."""
    extras = f"[{','.join(sorted(req.extras))}]" if req.extras else ""
    return f"{req.name}{extras}{req.specifier}"


@dataclass
class Resolution:
    """What one target installs (name -> version), or why it cannot."""

    python: str
    platform: str
    installed: dict[str, str] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    metadata: dict[str, dict] = field(default_factory=dict, repr=False)

    @property
    def ok(self) -> bool:
        return not self.problems


def _pip(python: str, platform: Platform, reqs: list[str]) -> tuple[list[dict], str, str]:
    """pip's finder for requirements on the target, dependencies not followed: the report's
    entries (each with its wheel's metadata); or, when one has no wheel for the target, the
    requirement and pip's words."""
    with tempfile.TemporaryDirectory() as tmp:
        rfile = Path(tmp) / "requirements.txt"
        rfile.write_text("\n".join(reqs) + "\n")
        report = Path(tmp) / "report.json"
        cmd = [sys.executable, "-m", "pip", "--isolated", "install", "--dry-run", "--ignore-installed",
               "--no-deps", "--only-binary", ":all:", "--python-version", python,
               "--target", str(Path(tmp) / "t"), "--report", str(report), "--progress-bar", "off",
               "-r", str(rfile)]
        for tag in platform.tags:
            cmd += ["--platform", tag]
        # --isolated drops the machine's pip configuration (its extra indexes and constraints);
        # the certificate bundle is kept so that a TLS-intercepting proxy still works.
        cert = os.environ.get("PIP_CERT") or os.environ.get("REQUESTS_CA_BUNDLE")
        if cert:
            cmd += ["--cert", cert]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900, check=False)
        if proc.returncode == 0:
            return json.loads(report.read_text())["install"], "", ""
    found = re.search(r"No matching distribution found for (\S+)", proc.stderr)
    if not found:
        raise RuntimeError(f"pip failed: {proc.stderr.strip()[-2000:]}")
    words = [ln.removeprefix("ERROR: ") for ln in proc.stderr.splitlines() if ln.startswith("ERROR: ")]
    return [], found.group(1), " ".join(words)[:600]


def resolve(python: str, platform_name: str, *, dev: bool = True, known: dict[str, dict] | None = None,
            roots: list[Requirement] | None = None, pinned: list[Requirement] | None = None) -> Resolution:
    """The pinned set launchbay installs on one Python and platform, checked as a resolver would:
    every package the target needs (closed under the target's markers) has a pin or a release
    with a wheel for the target that admits its Python, and every pin satisfies every
    requirement on it. `roots` and `pinned` replace launchbay's requirements and constraints.txt."""
    platform = PLATFORMS[platform_name]
    env = environment(python, platform)
    pins = {canonicalize_name(c.name): c for c in (constraints() if pinned is None else pinned)
            if _applies(c, env)}
    result = Resolution(python, platform_name)
    # What another platform found is reused only where the pin is the same here.
    metadata = {n: m for n, m in (known or {}).items()
                if n in pins and pins[n].specifier.contains(m["version"])}
    unavailable: dict[str, str] = {}
    # Every pin in one call of pip (a call costs seconds, a package little); a pin with no wheel
    # here is set aside, and only a problem if the target turns out to need it.
    batch = [_bare(req) for name, req in pins.items() if name not in metadata]
    roots = [r for r in (requirements(dev=dev) if roots is None else roots) if _applies(r, env)]
    while True:
        while batch:
            items, failed, why = _pip(python, platform, batch)
            if failed:
                unavailable[canonicalize_name(Requirement(failed).name)] = why
                batch = [line for line in batch if line != failed]
                continue
            for item in items:
                meta = dict(item["metadata"], wheel=item["download_info"]["url"].rsplit("/", 1)[-1])
                metadata[canonicalize_name(meta["name"])] = meta
            batch = []
        needs = _closure(roots, metadata, env)
        # A dependency only this platform has may have no pin: pip picks the newest release
        # its dependents allow.
        unpinned = [n for n in needs if n not in metadata and n not in unavailable]
        if not unpinned:
            break
        batch = [_bare(needs[n][0][1]) for n in unpinned]
    result.metadata = {n: metadata[n] for n in needs if n in metadata}
    for name, wanted in sorted(needs.items()):
        if name in unavailable:
            result.problems.append(f"{name} (needed by {wanted[0][0]}): {unavailable[name]}")
            continue
        have = metadata[name]["version"]
        result.installed[name] = have
        for who, req in wanted:
            if not req.specifier.contains(have, prereleases=True):
                result.problems.append(f"{name}=={have} is pinned, but {who} needs {req}")
    return result


def _closure(roots: list[Requirement], metadata: dict[str, dict], env: dict[str, str]
             ) -> dict[str, list[tuple[str, Requirement]]]:
    """Every package the target needs, with who needs it and how, from the wheels' metadata."""
    needs: dict[str, list[tuple[str, Requirement]]] = {}
    extras: dict[str, set[str]] = {}
    todo = [("launchbay", r) for r in roots]
    while todo:
        who, req = todo.pop()
        name = canonicalize_name(req.name)
        first = name not in needs
        needs.setdefault(name, []).append((who, req))
        new = set(req.extras) - extras.setdefault(name, set())
        extras[name] |= new
        if name in metadata and (first or new):
            for line in metadata[name].get("requires_dist") or ():
                dep = Requirement(line)
                asked = frozenset(extras[name]) if first else frozenset(new)
                if _applies(dep, env, asked) and (first or not _applies(dep, env)):
                    todo.append((name, dep))
    return needs


def matrix(pythons: tuple[str, ...] = PYTHONS, platforms: tuple[str, ...] = tuple(PLATFORMS),
           *, dev: bool = True, workers: int = 3) -> dict[tuple[str, str], Resolution]:
    """Every Python on every platform. A pure-Python wheel (`py3-none-any`) is the same on every
    platform: it is looked up once per Python, on the first platform, and only the rest per
    platform (reading ~240 index pages costs pip ~25 s of CPU; most of them are pure)."""
    first, rest = platforms[0], platforms[1:]
    out: dict[tuple[str, str], Resolution] = {}
    with ThreadPoolExecutor(workers) as pool:
        for py, res in zip(pythons, pool.map(lambda py: resolve(py, first, dev=dev), pythons), strict=True):
            out[py, first] = res
        jobs = {}
        for py in pythons:
            pure = {n: m for n, m in out[py, first].metadata.items() if m["wheel"].endswith("-none-any.whl")}
            for plat in rest:
                jobs[py, plat] = pool.submit(resolve, py, plat, dev=dev, known=pure)
        out.update({key: job.result() for key, job in jobs.items()})
    return out


if __name__ == "__main__":
    results = matrix(tuple(sys.argv[1:2]) or PYTHONS, tuple(sys.argv[2:]) or tuple(PLATFORMS))
    for res in results.values():
        print(f"{res.python} {res.platform}: " + (f"ok, {len(res.installed)} packages" if res.ok
                                                   else "\n  ".join(res.problems)))
    sys.exit(0 if all(r.ok for r in results.values()) else 1)
