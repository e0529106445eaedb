"""The registry behind one protocol: `MODEL@REF` resolved one way, aliases and tags, clear errors.

Against a real MLflow store (SQLite in a temp dir) with a small registered model.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from harness import closed_port
from rollout_fakes import config

from launchbay.errors import EnvironmentProblem, UsageError
from launchbay.home import Home
from launchbay.registry import (
    CHAMPION,
    MlflowRegistry,
    ModelRef,
    champion,
    preflight,
    project_version,
    tracking_uri,
)


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> MlflowRegistry:
    """fraud-detector with versions 1 and 2 (a tiny estimator each); 2 is the champion."""
    import mlflow
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    home = Home(tmp_path_factory.mktemp("registry")).ensure()
    # Named explicitly: MLflow exports the last URI it was pointed at to the environment.
    cfg = config()
    cfg = cfg.model_copy(
        update={"mlflow": cfg.mlflow.model_copy(update={"tracking_uri": f"sqlite:///{home.mlflow_db}"})}
    )
    reg = MlflowRegistry(cfg, home)
    x, y = np.array([[0.0], [1.0], [2.0], [3.0]]), np.array([0, 0, 1, 1])
    runs = [  # what the model gate logs: held-out metrics, the champion's on the same rows
        ({"test_roc_auc": 0.8}, {"data.heldout_digest": "rows-a"}),
        ({"test_roc_auc": 0.9, "champion_test_roc_auc": 0.85}, {"data.heldout_digest": "rows-b"}),
    ]
    for metrics, params in runs:
        with mlflow.start_run(experiment_id=reg.experiment_id):
            mlflow.log_metrics(metrics)
            mlflow.log_params(params)
            info = mlflow.sklearn.log_model(
                LogisticRegression().fit(x, y), name="model", pip_requirements=["scikit-learn"]
            )
        mlflow.register_model(info.model_uri, cfg.model.name, tags={"launchbay.git_commit": "abc"})
    reg.set_alias(cfg.model.name, CHAMPION, "2")
    return reg


def test_model_refs_name_a_version_or_an_alias_and_malformed_ones_say_the_form() -> None:
    assert ModelRef.parse("fraud-detector@champion") == ModelRef("fraud-detector", "champion")
    assert str(ModelRef.parse("fraud-detector@3")) == "fraud-detector@3"
    for bad in ("fraud-detector", "@3", "fraud-detector@"):
        with pytest.raises(UsageError, match="expected MODEL@VERSION or MODEL@ALIAS"):
            ModelRef.parse(bad)


def test_versions_resolve_by_number_and_by_alias_and_download_as_files(
    registry: MlflowRegistry, tmp_path: Path
) -> None:
    by_alias = project_version(registry, registry.cfg, "fraud-detector@champion")
    by_number = registry.get("fraud-detector", "2")
    assert by_alias == by_number and by_alias.version == "2" and by_alias.model_id.startswith("m-")
    assert by_alias.run_id and by_alias.source.startswith("models:/")
    files = registry.download(by_alias, tmp_path / "v2")
    assert (files / "MLmodel").exists()


def test_unknown_versions_aliases_and_other_models_are_usage_errors(registry: MlflowRegistry) -> None:
    with pytest.raises(UsageError, match="fraud-detector@9: no such model version or alias"):
        registry.get("fraud-detector", "9")
    with pytest.raises(UsageError, match="fraud-detector@staging: no such model version or alias"):
        project_version(registry, registry.cfg, "fraud-detector@staging")
    with pytest.raises(UsageError, match="this project's model is fraud-detector"):
        project_version(registry, registry.cfg, "churn@1")


def test_aliases_move_and_tags_stick(registry: MlflowRegistry) -> None:
    assert champion(registry, "fraud-detector") == "2"
    registry.set_alias("fraud-detector", CHAMPION, "1")
    assert champion(registry, "fraud-detector") == "1"
    registry.set_alias("fraud-detector", CHAMPION, "2")
    assert registry.alias("fraud-detector", "challenger") is None
    assert registry.alias("no-such-model", CHAMPION) is None
    registry.tag("fraud-detector", "1", "launchbay.rollout", "rolled-back")
    assert registry.get("fraud-detector", "1").tags["launchbay.rollout"] == "rolled-back"


def test_state_shows_the_champion_and_an_unregistered_model(registry: MlflowRegistry) -> None:
    state = registry.state("fraud-detector")
    assert state["registered"] and state["versions"] == 2
    assert state["aliases"]["champion"]["version"] == 2
    assert registry.state("churn") == {"model": "churn", "registered": False, "versions": 0, "aliases": {}}


def test_status_reads_the_embedded_store_without_mlflow_and_says_the_same(registry: MlflowRegistry) -> None:
    client = registry.client
    try:
        for champ, chall in (("2", "1"), ("1", "2")):
            registry.set_alias("fraud-detector", CHAMPION, champ)
            registry.set_alias("fraud-detector", "challenger", chall)
            fast, slow = registry.state("fraud-detector"), registry.state("fraud-detector", fast=False)
            assert fast == slow
            assert fast["aliases"]["champion"]["git_commit"] == "abc"
        # Champion 1 and challenger 2 were measured on different rows; 2's run measured the
        # champion of its day on its own rows: that is the comparison shown.
        assert fast["comparison"] == {
            "same_rows": True,
            "champion": {"roc_auc": 0.85},
            "challenger": {"roc_auc": 0.9},
            "note": "the champion as the model gate measured it on the challenger's held-out rows",
        }
        registry.set_alias("fraud-detector", CHAMPION, "2")
        registry.set_alias("fraud-detector", "challenger", "1")
        assert registry.state("fraud-detector")["comparison"]["same_rows"] is False
    finally:
        registry.set_alias("fraud-detector", CHAMPION, "2")
        client.delete_registered_model_alias("fraud-detector", "challenger")


def test_preflight_refuses_stores_that_cannot_work(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    home = Home(tmp_path)
    assert tracking_uri(config(), home) == f"sqlite:///{home.mlflow_db}"

    def with_uri(uri: str) -> object:
        mlflow = config().mlflow.model_copy(update={"tracking_uri": uri})
        return config().model_copy(update={"mlflow": mlflow})

    with pytest.raises(EnvironmentProblem, match="file stores are not supported by MLflow 3"):
        preflight(with_uri(str(tmp_path / "mlruns")), home)  # type: ignore[arg-type]
    with pytest.raises(EnvironmentProblem, match="is unreachable"):
        preflight(with_uri(f"http://127.0.0.1:{closed_port()}"), home)  # type: ignore[arg-type]
