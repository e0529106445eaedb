"""The pipeline's steps called as plain Python (as Hera allows outside a workflow), in this process.

One chain registers, signs and packages the example model; the tests then check what each step
left for the next and for people: outputs, registry aliases and tags, the signed provenance, the
Bento's contents. Failures end a step with a message for people (exit 1), never a traceback.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import fraud_data
import pytest
import yaml
from projects import write_project

from launchbay.checks.registered import verify_registered
from launchbay.checks.signature import generate_keypair
from launchbay.config import LaunchbayConfig, load_config
from launchbay.home import Home
from launchbay.pipelines import steps
from launchbay.registry import MlflowRegistry


@dataclass
class Chain:
    config: Path
    cfg: LaunchbayConfig
    home: Home
    data: str
    run_id: str
    digest: str
    version: str
    aliases: str
    signature: str
    bento: str


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Chain]:
    root = tmp_path_factory.mktemp("steps")
    home = Home(root / "home").ensure()
    generate_keypair(home.root / "keys")
    config = write_project(root, rows=2000)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LAUNCHBAY_HOME", str(home.root))
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        data = str(root / "data" / "transactions.parquet")
        run_id, digest = steps.validate_data(str(config), data, "abc123")
        uri = steps.train(str(config), data, run_id)
        assert steps.evaluate(str(config), data, run_id, uri) == "none"  # no champion yet
        version, aliases = steps.register(str(config), run_id, uri, digest)
        signature, served = steps.sign_model(str(config), data, run_id, version, digest)
        assert served == "onnx"  # the example converts and matches its native model
        bento = steps.package(str(config), version)
        os.environ.pop("LAUNCHBAY_MODEL", None)  # set by the Bento build in this process
        yield Chain(
            config, load_config(config), home, data, run_id, digest, version, aliases, signature, bento
        )


def _variant(chain: Chain, name: str, **changes: object) -> str:
    doc = yaml.safe_load(chain.config.read_text())
    for dotted, value in changes.items():
        node = doc
        *parents, leaf = dotted.split(".")
        for p in parents:
            node = node[p]
        node[leaf] = value
    path = chain.config.parent / f"{name}.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))  # features keep their order
    return str(path)


def test_the_first_version_is_registered_as_champion_signed_and_packaged(chain: Chain) -> None:
    assert chain.digest.startswith("sha256:") and chain.version == "1"
    assert chain.aliases == "challenger,champion"  # bootstrap: nothing to protect yet
    registry = MlflowRegistry(chain.cfg, chain.home)
    mv = registry.get("fraud-detector", "1")
    assert mv.tags["launchbay.signature_sha256"] == chain.signature
    assert mv.tags["launchbay.bento"] == chain.bento == "fraud-detector:v1"
    assert mv.tags["launchbay.gate.data"] == mv.tags["launchbay.gate.model"] == "PASS"
    checked = verify_registered(chain.cfg, chain.home, "fraud-detector@1", registry)
    assert checked.verdict.ok and checked.origin is not None
    assert checked.origin.git_commit == "abc123" and checked.origin.data_digest == chain.digest


def test_the_bento_carries_launchbays_service_floors_and_the_users_model_code_only(chain: Chain) -> None:
    src = chain.home.root / "bentoml" / "bentos" / "fraud-detector" / "v1" / "src"
    top = {p.name for p in src.iterdir()}
    # BentoML writes the build's own config; the model's `engineer` comes from fraud_model.py.
    assert top == {"launchbay", "bentofile.yaml", "fraud_model.py"}, top
    assert (src / "fraud_model.py").read_text() == (chain.config.parent / "fraud_model.py").read_text()
    packages = {p.name for p in (src / "launchbay").iterdir() if p.is_dir()}
    assert packages == {"config", "checks", "serving"}, packages
    assert (src / "launchbay" / "serving" / "service.py").is_file()
    assert not any(p.is_symlink() for p in src.rglob("*"))


def test_the_onnx_variant_is_signed_with_the_model_and_recorded_in_its_provenance(chain: Chain) -> None:
    import json

    from launchbay.checks import lean_verify, provenance
    from launchbay.checks.signature import file_sha256

    signed = chain.home.root / "bentoml" / "models" / "fraud-detector" / "v1" / "signed"
    graph = signed / "onnx" / "model.onnx"
    assert graph.is_file() and (signed / "onnx" / "variant.json").is_file()
    served = provenance.read(signed)["predicate"]["serving"]
    assert served["onnx"]["sha256"] == file_sha256(graph)
    assert served["onnx"]["parity"]["max_difference"] <= 1e-5
    assert served["onnx"]["parity"]["differing_classes"] == 0
    # One signature covers both: a flipped byte in the graph fails the model's verification.
    key = chain.home.root / "keys" / "signing-key.pub"
    assert lean_verify.verify(signed, [key]).verdict.ok
    report = json.loads((chain.home.reports / chain.run_id / "onnx_variant.json").read_text())
    assert report["verdict"] == "PASS" and report["summary"]["served"] == "onnx"
    mv = MlflowRegistry(chain.cfg, chain.home).get("fraud-detector", "1")
    assert mv.tags["launchbay.serving_variant"] == "onnx"


def test_a_second_model_is_compared_with_the_champion_and_only_becomes_challenger(chain: Chain) -> None:
    run_id, digest = steps.validate_data(str(chain.config), chain.data)
    uri = steps.train(str(chain.config), chain.data, run_id)
    assert steps.evaluate(str(chain.config), chain.data, run_id, uri) == "1"
    version, aliases = steps.register(str(chain.config), run_id, uri, digest)
    assert (version, aliases) == ("2", "challenger")
    registry = MlflowRegistry(chain.cfg, chain.home)
    assert registry.alias("fraud-detector", "champion") == "1"
    # How its answers differ from the champion's on the same distinct held-out rows: what shadow
    # will judge the live difference against.
    from launchbay.checks.difference import OFFLINE_TAG, OfflineDifference

    offline = OfflineDifference.from_json(registry.get("fraud-detector", "2").tags.get(OFFLINE_TAG))
    assert offline is not None and offline.against == "1" and offline.rows > 100
    assert offline.disagreeing is not None and offline.disagreeing < offline.rows
    report = (chain.home.reports / run_id / "model_gate.md").read_text()
    assert "answers vs champion v1 (offline)" in report and "distinct held-out rows disagree" in report


def test_broken_data_stops_at_the_data_gate_with_a_readable_report(
    chain: Chain, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = chain.config.parent / "data" / "broken.parquet"
    fraud_data.write(fraud_data.generate(2000, "broken", seed=3), broken)
    with pytest.raises(SystemExit) as stopped:
        steps.validate_data(str(chain.config), str(broken))
    assert stopped.value.code == 1
    err = capsys.readouterr().err
    assert "data gate FAIL" in err and "device_age_days" in err and "report: " in err


USER_MODULE = """
def no_probabilities(features, target, params):
    return object()


def broken(features, target, params):
    raise ValueError("column 'amount' has text in it")
"""


@pytest.mark.parametrize(
    ("entrypoint", "message"),
    [
        ("no_such_module:train", "model.train: cannot import module 'no_such_module'"),
        ("fraud_model:no_such_function", "model.train: 'fraud_model' has no function 'no_such_function'"),
        (
            "user_steps:no_probabilities",
            "user_steps:no_probabilities (model.task binary) returned object, which has no predict_proba()",
        ),
    ],
)
def test_a_training_entrypoint_that_cannot_train_is_named(
    chain: Chain,
    entrypoint: str,
    message: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    (chain.config.parent / "user_steps.py").write_text(USER_MODULE)
    monkeypatch.syspath_prepend(str(chain.config.parent))  # as the executor's PYTHONPATH does
    config = _variant(chain, "bad-train", **{"model.train": entrypoint})
    run_id, _ = steps.validate_data(config, chain.data)
    with pytest.raises(SystemExit) as stopped:
        steps.train(config, chain.data, run_id)
    assert stopped.value.code == 1 and message in capsys.readouterr().err


def test_a_failing_training_function_fails_the_run_with_the_users_own_frames_first(
    chain: Chain, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (chain.config.parent / "user_steps.py").write_text(USER_MODULE)
    monkeypatch.syspath_prepend(str(chain.config.parent))
    config = _variant(chain, "broken-train", **{"model.train": "user_steps:broken"})
    run_id, _ = steps.validate_data(config, chain.data)
    with pytest.raises(SystemExit):
        steps.train(config, chain.data, run_id)
    err = capsys.readouterr().err
    first = "model.train (user_steps:broken) failed: ValueError: column 'amount' has text in it"
    assert err.startswith(first)
    assert 'user_steps.py", line 7, in broken' in err and "steps.py" not in err.replace("user_steps.py", "")
    run = MlflowRegistry(chain.cfg, chain.home).client.get_run(run_id)
    assert run.data.tags["launchbay.failed_step"] == "train" and run.info.status == "FAILED"
    # With LAUNCHBAY_DEBUG the whole traceback is raised, for launchbay's own debugging
    monkeypatch.setenv("LAUNCHBAY_DEBUG", "1")
    run_id, _ = steps.validate_data(config, chain.data)
    with pytest.raises(ValueError, match="column 'amount' has text in it"):
        steps.train(config, chain.data, run_id)


def test_a_model_whose_own_code_would_not_be_shipped_is_stopped_before_registration(
    chain: Chain, capsys: pytest.CaptureFixture[str]
) -> None:
    # The example pipeline calls fraud_model.engineer; shipping nothing would break the served model.
    config = _variant(chain, "no-code", **{"model.code": []})
    run_id, _ = steps.validate_data(config, chain.data)
    with pytest.raises(SystemExit) as stopped:
        steps.train(config, chain.data, run_id)
    err = capsys.readouterr().err
    assert stopped.value.code == 1
    assert "uses code from fraud_model, which would not be shipped with it (model.code: nothing)" in err


CUSTOM_MODEL = """
import fraud_model


class Wrapped:
    def __init__(self, inner):
        self.inner = inner
        self.classes_ = inner.classes_

    def predict_proba(self, x):
        return self.inner.predict_proba(x)


def train(features, target, params):
    return Wrapped(fraud_model.train(features, target, params))
"""


def test_a_model_without_a_converter_is_served_natively_and_the_run_says_why(
    chain: Chain, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Last in this module: it registers a version of its own. A custom estimator has no converter.
    (chain.config.parent / "custom_model.py").write_text(CUSTOM_MODEL)
    monkeypatch.syspath_prepend(str(chain.config.parent))
    code = ["custom_model.py", "fraud_model.py"]
    config = _variant(chain, "no-onnx", **{"model.train": "custom_model:train", "model.code": code})
    run_id, digest = steps.validate_data(config, chain.data)
    uri = steps.train(config, chain.data, run_id)
    version, _ = steps.register(config, run_id, uri, digest)
    _, served = steps.sign_model(config, chain.data, run_id, version, digest)
    assert served == "native"
    assert "onnx variant FAIL: served natively" in capsys.readouterr().err
    report = json.loads((chain.home.reports / run_id / "onnx_variant.md").with_suffix(".json").read_text())
    assert report["checks"][0]["detail"] == "no ONNX converter for custom_model.Wrapped"
    mv = MlflowRegistry(chain.cfg, chain.home).get("fraud-detector", version)
    assert mv.tags["launchbay.serving_variant"] == "native"


def test_held_out_rows_the_champion_trained_on_are_left_out_of_the_comparison(chain: Chain) -> None:
    # Another split of the same data: part of this run's held-out rows trained the champion.
    config = _variant(chain, "resplit", **{"data.split_seed": 7})
    run_id, _ = steps.validate_data(config, chain.data)
    uri = steps.train(config, chain.data, run_id)
    assert steps.evaluate(config, chain.data, run_id, uri) == "1"
    report = json.loads((chain.home.reports / run_id / "model_gate.json").read_text())
    leak = next(c for c in report["checks"] if c["name"] == "held-out rows the champion never saw")
    assert leak["verdict"] == "PASS" and "were in v1's training data" in leak["detail"]
    unseen = int(leak["observed"].split(" of ")[0])
    assert 0 < unseen < 500
    assert report["summary"]["compared with the champion on"] == f"{unseen} rows neither model saw"


def test_the_model_card_is_signed_with_the_model_and_its_digest_is_in_the_provenance(
    chain: Chain, tmp_path: Path
) -> None:
    from launchbay.checks import card
    from launchbay.checks.registered import verified_card
    from launchbay.checks.signature import sign
    from launchbay.rollout.card import compose

    registry = MlflowRegistry(chain.cfg, chain.home)
    checked, text = verified_card(chain.cfg, chain.home, "fraud-detector@1", registry)
    assert checked.verdict.ok and text is not None and checked.origin is not None
    assert checked.origin.model_card == card.digest(text)
    _, front, body = text.split("---\n", 2)
    meta = yaml.safe_load(front)
    assert meta["model_name"] == "fraud-detector" and meta["pipeline_tag"] == "tabular-classification"
    assert meta["launchbay"]["data_digest"] == chain.digest and meta["launchbay"]["gates"]["data"] == "PASS"
    results = meta["model-index"][0]["results"][0]
    assert {m["type"] for m in results["metrics"]} >= {"roc_auc", "precision", "recall"}
    assert results["dataset"]["revision"] == chain.digest
    for section in ("## Intended use", "## Training data", "## Evaluation", "## Provenance"):
        assert section in body, section
    composed = compose(chain.cfg, chain.home, "fraud-detector@1", registry)
    assert composed.text.startswith(text.rstrip()) and "## Rollout" in composed.text
    assert "Not released yet." in composed.text and composed.signed_sha256 == card.digest(text)

    class Edited:
        """The registry's copy with its card rewritten -- and, by someone holding the signing key,
        signed again: the signature then verifies, the provenance's record of the card does not."""

        def __init__(self, resign: bool) -> None:
            self.resign = resign

        def __getattr__(self, name: str) -> object:
            return getattr(registry, name)

        def download(self, version: object, target: Path) -> Path:
            model_dir = registry.download(version, target)  # type: ignore[arg-type]
            path = model_dir / card.CARD_FILE
            path.write_text(path.read_text().replace("## Limitations", "## Limitations\n\nNone at all."))
            if self.resign:
                sign(model_dir, chain.home.root / "keys" / "signing-key.pem")
            return model_dir

    unsigned, _ = verified_card(chain.cfg, chain.home, "fraud-detector@1", Edited(False))  # type: ignore[arg-type]
    assert not unsigned.verdict.ok
    resigned, none = verified_card(chain.cfg, chain.home, "fraud-detector@1", Edited(True))  # type: ignore[arg-type]
    assert not resigned.verdict.ok and none is None
    assert resigned.message == f"{card.CARD_FILE} differs from the card the signed provenance records"
