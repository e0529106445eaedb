from pathlib import Path

from launchbay.checks import provenance


def test_statement_binds_the_model_digest_to_its_origin(tmp_path: Path) -> None:
    doc = provenance.statement(
        model="fraud-detector",
        version="3",
        model_digest="ab" * 32,
        git_commit="c0ffee",
        data_digest="sha256:dd",
        run_id="r1",
        tracking_uri="sqlite:///x.db",
        reports={"data_gate.json": "11", "model_gate.json": "22"},
        gates={"data": "PASS", "model": "PASS"},
    )
    assert doc["_type"] == "https://in-toto.io/Statement/v1"
    assert doc["subject"] == [{"name": "fraud-detector@v3", "digest": {"sha256": "ab" * 32}}]
    pred = doc["predicate"]
    assert pred["source"]["git_commit"] == "c0ffee" and pred["training_run"]["id"] == "r1"
    assert pred["gate_reports"]["model_gate.json"] == {"sha256": "22"}
    provenance.write(tmp_path, doc)
    assert provenance.read(tmp_path) == doc
