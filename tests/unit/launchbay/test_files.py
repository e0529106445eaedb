"""State files are written whole and stay their owner's, whatever the process's umask."""

from __future__ import annotations

import os
import stat
import threading
from pathlib import Path

from launchbay.files import write_private


def test_a_new_file_and_its_folder_are_the_owners_only_even_under_a_permissive_umask(tmp_path: Path) -> None:
    path = tmp_path / "state" / "routes.json"
    old = os.umask(0o000)
    try:
        write_private(path, '{"stable": null}')
    finally:
        os.umask(old)
    assert path.read_text() == '{"stable": null}'
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700


def test_replacing_leaves_no_temporary_file_and_fixes_a_world_readable_original(tmp_path: Path) -> None:
    path = tmp_path / "record.json"
    path.write_text("old")
    path.chmod(0o644)
    write_private(path, "new")
    assert path.read_text() == "new" and stat.S_IMODE(path.stat().st_mode) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["record.json"]


def test_writers_at_once_leave_one_whole_text(tmp_path: Path) -> None:
    path = tmp_path / "record.json"
    texts = [str(n) * 50_000 for n in range(8)]
    barrier = threading.Barrier(len(texts))

    def write(text: str) -> None:
        barrier.wait()
        for _ in range(20):
            write_private(path, text)

    threads = [threading.Thread(target=write, args=(t,)) for t in texts]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert path.read_text() in texts
    assert sorted(p.name for p in tmp_path.iterdir()) == ["record.json"]
