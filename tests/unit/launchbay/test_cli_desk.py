"""The release managers' verbs as a user types them: `notify test`, `ui`, `history --plot`."""

from __future__ import annotations

import json
import socket
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from harness import assert_clean_error, closed_port, lb
from webhooks import Receiver


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def _hooks(tmp_path: Path, url: str) -> dict[str, object]:
    (tmp_path / "slack.url").write_text(f"{url}/slack\n")
    return {
        "notifications.webhooks": [
            {"name": "team", "url_env": "TEAM_WEBHOOK"},
            {"name": "chat", "format": "slack", "url_file": str(tmp_path / "slack.url")},
        ]
    }


def test_notify_test_sends_a_sample_to_each_webhook(
    project: Callable[..., Path], tmp_path: Path, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEAM_WEBHOOK", f"{receiver.url}/team")
    config = project(rows=200, overrides=_hooks(tmp_path, receiver.url))
    res = lb("notify", "test", "--json", cwd=config.parent)
    assert res.returncode == 0, res.output
    assert [(r["webhook"], r["ok"], r["status"]) for r in json.loads(res.stdout)] == [
        ("team", True, 200),
        ("chat", True, 200),
    ]
    (team,) = receiver.delivered("/team")
    assert team["test"] is True and team["event"] == "awaiting-approval" and team["model"] == "fraud-detector"
    assert set(team) >= {
        "type",
        "event_id",
        "at",
        "release",
        "version",
        "actor",
        "reason",
        "failing_checks",
        "page",
    }
    (chat,) = receiver.delivered("/slack")
    assert "waits for a release manager's approval" in chat["text"]


def test_notify_test_to_a_receiver_that_is_down_fails_without_printing_its_url(
    project: Callable[..., Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = f"http://127.0.0.1:{closed_port()}/T0KEN-in-the-path"
    monkeypatch.setenv("TEAM_WEBHOOK", secret)
    config = project(rows=200, overrides=_hooks(tmp_path, secret))
    res = lb("notify", "test", "--webhook", "team", cwd=config.parent)
    assert res.returncode == 1 and "team (json): failed: ConnectError" in res.stdout, res.output
    assert "T0KEN" not in res.output


def test_notification_mistakes_are_usage_errors(project: Callable[..., Path], tmp_path: Path) -> None:
    config = project(rows=200)
    assert_clean_error(
        lb("notify", "test", cwd=config.parent), 2, "notifications.webhooks", "names no webhook"
    )
    leaky = project(
        rows=200, overrides={"notifications.webhooks": [{"name": "x", "url": "https://hooks/T0KEN"}]}
    )
    assert_clean_error(lb("notify", "test", cwd=leaky.parent), 2, "notifications", "url_env")
    hooked = project(rows=200, overrides=_hooks(tmp_path, "http://127.0.0.1:9"))
    assert_clean_error(
        lb("notify", "test", "--webhook", "nope", cwd=hooked.parent), 2, "no such webhook", "team"
    )


def test_ui_on_a_port_in_use_and_history_plot_without_releases_say_what_is_wrong(
    project: Callable[..., Path], tmp_path: Path
) -> None:
    config = project(rows=200)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = str(busy.getsockname()[1])
        assert_clean_error(lb("ui", "--port", port, cwd=config.parent), 2, f"--port {port}", "cannot listen")
    plot = str(tmp_path / "h.png")
    assert_clean_error(
        lb("history", "fraud-detector", "--plot", plot, cwd=config.parent), 2, "has no release in the ledger"
    )
    wrong = str(tmp_path / "h.svg")
    assert_clean_error(
        lb("history", "fraud-detector", "--plot", wrong, cwd=config.parent), 2, "expected a .png"
    )
