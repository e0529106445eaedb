"""Shadow in a cluster, row by row: two real model servers (the lean runtime, signed models of each
task) keep their answers by request id; the controller's join pairs them and compares each row as
the local gateway does.

The route is launchbay's HTTPRoute as the real CRD API server keeps it: its weighted backend is
stable, its RequestMirror filter names the candidate. No gateway data plane runs here, so the test
plays its part exactly: every request goes to the weighted backend with an `X-Request-Id`, and a
copy with the same id goes to the mirror's backend (what Envoy Gateway, Istio and Contour do).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
from apiserver import RealApiServer, running
from model_dirs import saved
from rollout_fakes import cluster_config

from launchbay import procs
from launchbay.checks.signature import generate_keypair, sign
from launchbay.rollout.metrics.compare import disagree, row_shift
from launchbay.rollout.metrics.join import ShadowJoin
from launchbay.rollout.targets.base import Routes
from launchbay.rollout.targets.kube_api import Api, api_client
from launchbay.rollout.targets.kubernetes import KubernetesTarget

pytestmark = [pytest.mark.slow, pytest.mark.linux_only("the CRD API server here is built for Linux")]

FEATURES = {"a": {"type": "float"}, "b": {"type": "float"}}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RealApiServer]:
    with running(tmp_path_factory.mktemp("apiserver")) as api:
        yield api


def _models(task: str) -> tuple[Any, Any]:
    """Stable and a retrained candidate: close, but not the same answers."""
    from sklearn.linear_model import LinearRegression, LogisticRegression, Ridge

    rng = np.random.default_rng(0)
    x = pd.DataFrame(rng.normal(size=(400, 2)), columns=list(FEATURES))
    if task == "regression":
        y = 3 * x["a"] - 2 * x["b"] + rng.normal(size=400)
        return LinearRegression().fit(x, y), Ridge(alpha=200.0).fit(x, y)
    if task == "binary":
        y = (x["a"] + 0.5 * x["b"] + rng.normal(scale=0.8, size=400) > 0).astype(int)
    else:
        y = pd.Series(np.digitize(x["a"] + rng.normal(scale=0.5, size=400), [-0.5, 0.5])).map(
            {0: "low", 1: "mid", 2: "high"}
        )
    return LogisticRegression(C=1.0).fit(x, y), LogisticRegression(C=0.005).fit(x, y)


class Lean:
    """`python -m launchbay.serving.lean` on a signed model directory, keeping an answer log."""

    def __init__(self, model_dir: Path, key: Path, log: Path, **extra: str) -> None:
        self.port = procs.free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "LAUNCHBAY_TRUSTED_KEYS": str(key), "LAUNCHBAY_ANSWER_LOG": "500", **extra}
        argv = [sys.executable, "-m", "launchbay.serving.lean", "--model-dir", str(model_dir),
                "--port", str(self.port)]  # fmt: skip
        self.proc = subprocess.Popen(argv, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(self.url + "/readyz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.1)
        self.stop()
        raise AssertionError(f"the lean server did not start: {log.read_text()}")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(15)
        assert self.proc.poll() is not None


@pytest.mark.parametrize("task", ["binary", "multiclass", "regression"])
def test_mirrored_answers_are_joined_row_by_row_for_every_task(
    task: str, server: RealApiServer, tmp_path: Path
) -> None:
    private, public = generate_keypair(tmp_path / "keys")
    servers: dict[str, Lean] = {}
    try:
        for version, model in zip(("1", "2"), _models(task), strict=True):
            directory = saved(model, tmp_path / f"v{version}", task, FEATURES)
            sign(directory, private)
            servers[version] = Lean(directory, public, tmp_path / f"v{version}.log")
        # launchbay's route for the shadow step, as the real API server keeps it.
        cfg = cluster_config("kubernetes", server.kubeconfig)
        cfg = cfg.model_copy(update={"model": cfg.model.model_copy(update={"name": f"join-{task}"})})
        target = KubernetesTarget(cfg, Api(api_client(cfg)))
        target.set_routes(Routes(stable=target.backend("1"), canary=target.backend("2"), mirror=True))
        with server.client() as http:
            route = http.get(f"/apis/gateway.networking.k8s.io/v1/namespaces/ml/httproutes/join-{task}")
        rule = route.json()["spec"]["rules"][0]
        by_service = {f"join-{task}-v1": servers["1"].url, f"join-{task}-v2": servers["2"].url}
        primary = by_service[rule["backendRefs"][0]["name"]]
        mirror = by_service[rule["filters"][0]["requestMirror"]["backendRef"]["name"]]
        assert (primary, mirror) == (servers["1"].url, servers["2"].url)

        rng = np.random.default_rng(1)
        rows = [{"a": float(a), "b": float(b)} for a, b in rng.normal(size=(60, 2))]
        sent = [*rows, *rows[:15]]  # a client asking for 15 rows twice: each counts once
        answers: dict[str, tuple[Any, Any]] = {}
        with httpx.Client(timeout=10) as client:
            for i, row in enumerate(sent):
                rid = f"req-{task}-{i}"
                headers = {"X-Request-Id": rid}
                ours = client.post(primary + "/predict", json={"row": row}, headers=headers)
                theirs = client.post(mirror + "/predict", json={"row": row}, headers=headers)
                assert ours.status_code == theirs.status_code == 200, (ours.text, theirs.text)
                answers[json.dumps(row, sort_keys=True)] = (ours.json()["predictions"][0],
                                                            theirs.json()["predictions"][0])  # fmt: skip
            client.post(primary + "/predict", json={"row": rows[0]})  # no id: not kept, not joined

        join = ShadowJoin(lambda v: [servers[v].url])
        join.pull("1", "2")
        stats = join.stats(window=300)
        assert join.reachable and not join.errors
        expected_shift = [row_shift(s, c) for s, c in answers.values()]
        assert stats.compared.value == 60
        disagreed = sum(disagree(s, c) for s, c in answers.values())
        assert stats.disagreement.value == pytest.approx(disagreed / 60)
        assert stats.score_shift.value == pytest.approx(sum(x or 0.0 for x in expected_shift) / 60)
        if task == "regression":
            assert disagreed == 0 and 0 < (stats.score_shift.value or 0) < 1
        else:
            assert 0 < (stats.score_shift.value or 0) < 1  # a retrain: close, not the same
        join.pull("1", "2")  # read again: nothing new, nothing counted twice
        assert join.stats(window=300).compared.value == 60
    finally:
        for s in servers.values():
            s.stop()


def test_the_pods_come_from_the_versions_endpoint_slices() -> None:
    class Slices:
        def list(self, api_version: str, kind: str, namespace: str, selector: str) -> list[dict[str, Any]]:
            assert (api_version, kind, namespace) == ("discovery.k8s.io/v1", "EndpointSlice", "ml")
            assert selector == "kubernetes.io/service-name=fraud-detector-v2"
            ready, starting = {"ready": True}, {"ready": False}
            return [{"endpoints": [{"addresses": ["10.0.0.5"], "conditions": ready},
                                   {"addresses": ["10.0.0.6"], "conditions": starting}]},
                    {"endpoints": [{"addresses": ["10.0.1.7"], "conditions": ready}]}]  # fmt: skip

    cfg = cluster_config("kubernetes", "unused")
    target = KubernetesTarget(cfg, Slices())  # type: ignore[arg-type]
    assert target.endpoints("2") == ["http://10.0.0.5:3000", "http://10.0.1.7:3000"]


def test_stable_pods_sample_their_requests_and_the_candidate_is_replayed_them_before_shadow(
    tmp_path: Path,
) -> None:
    """Replay in a cluster: stable's servers keep a bounded sample of the requests they answer
    (fields dropped as configured), the controller merges every pod's and replays them to the
    candidate's Service."""
    from launchbay.checks.verdict import Verdict
    from launchbay.config.rollout import ReplaySection, SloSection
    from launchbay.rollout import replay

    private, public = generate_keypair(tmp_path / "keys")
    servers: dict[str, Lean] = {}
    try:
        for version, model in zip(("1", "2"), _models("binary"), strict=True):
            directory = saved(model, tmp_path / f"v{version}", "binary", FEATURES)
            sign(directory, private)
            sample = {"LAUNCHBAY_CAPTURE": "40", "LAUNCHBAY_CAPTURE_DROP": "note"}
            servers[version] = Lean(directory, public, tmp_path / f"v{version}.log", **sample)
        with httpx.Client(timeout=10) as client:
            for i in range(100):  # every other one with a free-text field the sample must not keep
                row = {"a": i / 10, "b": -i / 10, **({"note": f"customer {i} called"} if i % 2 else {})}
                client.post(servers["1"].url + "/predict", json={"row": row})
        cfg = cluster_config("kubernetes", tmp_path / "unused")
        target = KubernetesTarget(cfg, Api(None))
        target.endpoints = lambda version: [servers[version].url]  # type: ignore[method-assign]
        got = target.captured("1")
        assert got is not None and len(got.bodies) == 40 and got.seen == 100 and got.peak_rps >= 1
        assert all(set(json.loads(b)["row"]) == {"a", "b"} for b in got.bodies)
        legs = replay.plan(ReplaySection(burst=2, duration=1.5, min_rate=20), got.peak_rps)
        answered = replay.replay(servers["2"].url, got.bodies, legs, 2.0)
        result = replay.judge(answered, SloSection(), got.peak_rps)
        assert result.verdict is Verdict.PASS, result.reason
        assert sum(leg.rejected for leg in answered) == 0  # a body that kept `note` would be a 400
    finally:
        for s in servers.values():
            s.stop()
