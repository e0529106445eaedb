"""The monitor in a cluster: label files in the shared store, a retrain as an Argo Workflow."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from rollout_fakes import ROLLOUT

from launchbay import storage
from launchbay.config import LaunchbayConfig
from launchbay.home import Home
from launchbay.pipelines.argo import validate
from launchbay.pipelines.cluster import rbac
from launchbay.rollout.monitor.argo import ArgoStarter, workflow
from launchbay.rollout.monitor.labels import StoreLabels, upload
from launchbay.rollout.monitor.state import State


def _config(store: str | None = "memory://launchbay/fraud", **monitor: Any) -> LaunchbayConfig:
    return LaunchbayConfig.model_validate(
        {
            "model": {"name": "fraud-detector", "train": "pkg.mod:train"},
            "data": {"path": "d.csv", "target": "is_fraud", "features": {"x": {"type": "float"}}},
            "rollout": {**ROLLOUT, "target": "kubernetes"},
            "monitor": {"store": store, "feedback": {"id_column": "tx"}, **monitor},
        }
    )


def test_a_cluster_retrain_needs_a_store_the_controller_and_the_workflow_share() -> None:
    with pytest.raises(ValueError, match=r"monitor\.store"):
        _config(store=None)
    assert _config(store=None, retrain={"on": []}).monitor is not None  # alarms only: no store needed


def test_label_files_in_the_store_are_read_once_with_the_configured_columns() -> None:
    cfg = _config(store="memory://labels-test/fraud")
    assert cfg.monitor is not None and cfg.monitor.store is not None
    store = cfg.monitor.store
    source, state = StoreLabels(cfg, store), State()
    assert source.new(state) == []  # nothing there yet
    url = upload(cfg, store, [{"id": "a", "label": 1}, {"id": "b", "label": 0}], "dana")
    assert url.startswith(store + "/labels/") and url.endswith(".jsonl")
    first = json.loads(storage.open_binary(url).read().decode().splitlines()[0])
    assert first["tx"] == "a" and first["is_fraud"] == 1 and first["by"] == "dana"
    # Any export that writes the configured columns counts too; anything else is not a label file.
    fs, root = storage.filesystem(store + "/labels/export.csv")
    with fs.open(root, "wb") as f:
        f.write(b"tx,is_fraud\nc,1\n")
    with fs.open(root.replace("export.csv", "notes.txt"), "wb") as f:
        f.write(b"nothing here")
    assert sorted(source.new(state)) == [("a", 1), ("b", 0), ("c", 1)]
    assert source.new(state) == []  # each file once
    assert source.all() == {"a": 1, "b": 0, "c": 1}


class FakeApi:
    """The Kubernetes API as the starter calls it: create a Workflow, read it back."""

    def __init__(self) -> None:
        self.created: list[dict[str, Any]] = []
        self.status: dict[str, Any] | None = {"phase": "Running"}

    def create(self, obj: dict[str, Any]) -> dict[str, Any]:
        self.created.append(obj)
        return obj

    def get(self, api_version: str, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        assert (api_version, kind) == ("argoproj.io/v1alpha1", "Workflow")
        if self.status is None:
            return None
        return {**self.created[-1], "status": self.status}


def test_a_cluster_retrain_is_a_workflow_from_the_models_template_on_the_uploaded_window(
    tmp_path: Path,
) -> None:
    cfg = _config(store="memory://retrain-test/fraud")
    data, reference = tmp_path / "window-1.parquet", tmp_path / "window-1-reference.parquet"
    pd.DataFrame({"x": [1.0], "is_fraud": [1]}).to_parquet(data)
    pd.DataFrame({"x": [1.0]}).to_parquet(reference)
    api = FakeApi()
    starter = ArgoStarter(api, "memory://retrain-test/fraud")  # type: ignore[arg-type]
    run = starter.start(cfg, Home(tmp_path), data, reference)
    (wf,) = api.created
    assert validate(wf) == []  # Argo's own schema
    assert wf["metadata"]["namespace"] == "argo" and wf["spec"]["workflowTemplateRef"] == {
        "name": "fraud-detector-training"
    }
    given = {p["name"]: p["value"] for p in wf["spec"]["arguments"]["parameters"]}
    assert given["author"] == "launchbay-monitor" and given["data"] == run["data_url"]
    assert pd.read_parquet(storage.open_binary(given["data"])).shape == (1, 2)  # the steps read it from there
    assert pd.read_parquet(storage.open_binary(given["reference"])).columns.tolist() == ["x"]
    assert starter.outcome(run) is None  # running (its approval step waits for a release manager)
    node = {"displayName": "validate-data", "phase": "Failed", "type": "Pod"}
    api.status = {"phase": "Failed", "message": "child failed", "nodes": {"n1": node}}
    assert starter.outcome(run) == {
        "succeeded": False,
        "phase": "failed",
        "workflow": wf["metadata"]["name"],
        "stopped_at": "validate-data",
        "reason": "child failed",
    }
    api.status = None
    assert "is gone" in (starter.outcome(run) or {})["reason"]


def test_render_lets_the_controller_start_workflows_in_the_argo_namespace_only_when_it_retrains() -> None:
    def bindings(cfg: LaunchbayConfig) -> list[dict[str, Any]]:
        return [
            o for o in rbac(cfg) if o["kind"] == "RoleBinding" and o["metadata"]["name"].endswith("-monitor")
        ]

    (b,) = bindings(_config())
    assert b["metadata"]["namespace"] == "argo" and b["roleRef"]["name"] == "fraud-detector-submitter"
    assert b["subjects"] == [
        {"kind": "ServiceAccount", "name": "launchbay-controller", "namespace": "launchbay"}
    ]
    assert bindings(_config(store=None, retrain={"on": []})) == []


def test_the_workflow_object_names_its_model_and_who_started_it() -> None:
    wf = workflow(_config(), "fraud-detector-retrain-1", "s3://b/d.parquet", "s3://b/r.parquet")
    assert wf["metadata"]["labels"]["launchbay.io/started-by"] == "launchbay-monitor"
