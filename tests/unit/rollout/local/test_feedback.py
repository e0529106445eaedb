"""Labels coming back: request ids, the feedback file, a file handed in."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pandas as pd
import pytest

from launchbay.rollout.local import feedback


def test_a_usable_client_id_is_kept_and_anything_else_is_replaced() -> None:
    headers = {"x-request-ID": "tx-001"}
    assert feedback.request_id(headers) == "tx-001" and headers == {}
    made = feedback.request_id({"X-Request-Id": "bad id\nwith newline"})
    assert len(made) == 32 and " " not in made
    assert feedback.request_id({}) != feedback.request_id({})


def test_the_token_is_made_once_and_private(tmp_path: Path) -> None:
    first = feedback.token(tmp_path)
    assert feedback.token(tmp_path) == first and len(first) > 30
    assert stat.S_IMODE((tmp_path / feedback.TOKEN_FILE).stat().st_mode) == 0o600


@pytest.mark.parametrize(
    ("doc", "says"),
    [
        ({}, "expected"),
        ([{"id": "a"}], "item 0"),
        ([{"id": "a b", "label": 1}], "X-Request-Id"),
        ([{"id": "a", "label": {"x": 1}}], "a value"),
        ({"labels": [{"id": "a", "label": None}]}, "a value"),
    ],
)
def test_a_malformed_document_is_named(doc: object, says: str) -> None:
    with pytest.raises(ValueError, match=says):
        feedback.parse(doc)


def test_the_latest_label_of_an_id_wins_and_a_torn_line_is_skipped(tmp_path: Path) -> None:
    feedback.append(
        tmp_path, feedback.parse({"labels": [{"id": "a", "label": 0}, {"id": "b", "label": "yes"}]}), "api"
    )
    feedback.append(tmp_path, [{"id": "a", "label": 1}], "dana")
    with (tmp_path / feedback.FEEDBACK_FILE).open("a") as f:
        f.write('{"id": "c", "lab')  # a writer that died mid-line
    assert feedback.labels(tmp_path) == {"a": 1, "b": "yes"}
    by = [json.loads(x)["by"] for x in (tmp_path / feedback.FEEDBACK_FILE).read_text().splitlines()[:3]]
    assert by == ["api", "api", "dana"]


@pytest.mark.parametrize("suffix", [".csv", ".parquet", ".jsonl", ".json"])
def test_a_file_of_labels_is_read_with_the_configured_columns(tmp_path: Path, suffix: str) -> None:
    rows = [{"rid": "007", "fraud": 1}, {"rid": "008", "fraud": 0}]
    path = tmp_path / f"labels{suffix}"
    if suffix == ".csv":
        pd.DataFrame(rows).to_csv(path, index=False)
    elif suffix == ".parquet":
        pd.DataFrame(rows).to_parquet(path)
    elif suffix == ".jsonl":
        path.write_text("\n".join(json.dumps(r) for r in rows))
    else:
        path.write_text(json.dumps(rows))
    items = feedback.read_file(path, "rid", "fraud")
    assert items == [{"id": "007", "label": 1}, {"id": "008", "label": 0}]  # "007" stays text
    with pytest.raises(ValueError, match="lacks 'label'"):
        feedback.read_file(path, "rid", "label")
