"""Where the monitor finds labels: the local gateway's feedback file, or label files in a store.

On the local target, `POST /feedback` and `launchbay feedback FILE` append to one file beside the
gateway (`launchbay.rollout.local.feedback`); the monitor reads it from where it stopped. In a
cluster there is no launchbay gateway and the controller's replicas come and go: labels are files
under `<monitor.store>/labels/` -- put there by `launchbay feedback FILE` or by any export that
writes CSV, Parquet or JSON lines with the configured columns -- and the monitor reads each new
file once.
"""

from __future__ import annotations

import json
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any, Protocol

from launchbay import storage
from launchbay.config import LaunchbayConfig
from launchbay.rollout.local import feedback
from launchbay.rollout.monitor.state import State

LABELS_DIR = "labels"


class LabelSource(Protocol):
    """Labels by request id."""

    def new(self, state: State) -> list[tuple[str, Any]]:
        """The labels that came since the last pass (the state remembers what was read)."""
        ...

    def all(self) -> dict[str, Any]:
        """Every request id's latest label."""
        ...


class FileLabels:
    """The local gateway's feedback file, read from the byte the last pass stopped at."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def new(self, state: State) -> list[tuple[str, Any]]:
        try:
            with (self.directory / feedback.FEEDBACK_FILE).open("rb") as f:
                f.seek(state.feedback_offset)
                data = f.read()
        except OSError:
            return []
        complete = data[: data.rfind(b"\n") + 1]  # a line still being written waits for the next pass
        state.feedback_offset += len(complete)
        return feedback.parse_lines(complete.decode(errors="replace"))

    def all(self) -> dict[str, Any]:
        return feedback.labels(self.directory)


class StoreLabels:
    """Label files under `<store>/labels/` (an fsspec URL), each read once."""

    def __init__(self, cfg: LaunchbayConfig, store: str) -> None:
        self.cfg, self.url = cfg, store.rstrip("/") + "/" + LABELS_DIR

    def _files(self) -> list[str]:
        fs, root = storage.filesystem(self.url)
        try:
            return sorted(str(p) for p in fs.find(root))
        except (FileNotFoundError, OSError):
            return []

    def _read(self, path: str) -> list[tuple[str, Any]]:
        assert self.cfg.monitor is not None
        columns = self.cfg.monitor.feedback
        fs, _ = storage.filesystem(self.url)
        with tempfile.TemporaryDirectory(prefix="launchbay-labels-") as tmp:
            local = Path(tmp) / Path(path).name
            fs.get(path, str(local))
            try:
                items = feedback.read_file(
                    local, columns.id_column, columns.label_column or self.cfg.data.target
                )
            except ValueError:
                return []  # not a label file (or a broken one): nothing in it is a label
        return [(str(i["id"]), i["label"]) for i in items]

    def new(self, state: State) -> list[tuple[str, Any]]:
        out: list[tuple[str, Any]] = []
        read = set(state.label_files)
        for path in self._files():
            if path not in read:
                out += self._read(path)
                state.label_files.append(path)
        return out

    def all(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for path in self._files():
            out.update(self._read(path))
        return out


def upload(cfg: LaunchbayConfig, store: str, items: list[dict[str, Any]], by: str) -> str:
    """Put labels under `<store>/labels/` as one JSON-lines file with the configured columns; its URL."""
    assert cfg.monitor is not None
    id_column = cfg.monitor.feedback.id_column
    label_column = cfg.monitor.feedback.label_column or cfg.data.target
    now = round(time.time(), 3)
    name = f"{time.strftime('%Y%m%dT%H%M%S', time.gmtime(now))}-{uuid.uuid4().hex[:8]}.jsonl"
    url = f"{store.rstrip('/')}/{LABELS_DIR}/{name}"
    fs, path = storage.filesystem(url)
    text = "".join(
        json.dumps({id_column: i["id"], label_column: i["label"], "at": now, "by": by}) + "\n" for i in items
    )
    with fs.open(path, "wb") as f:
        f.write(text.encode())
    return url

