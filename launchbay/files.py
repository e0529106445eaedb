"""Files in the state directory: written whole, readable by their owner only."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def write_private(path: Path, text: str) -> None:
    """Replace `path` with `text` atomically, mode 0600, creating its folder (0700) if needed.

    A reader sees the old file or the new one, never half of one; the text is never readable by
    anyone else, not even for a moment (the temporary file is created 0600); and two writers of the
    same file do not share a temporary name, so the last one to finish wins whole.
    """
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        Path(tmp).replace(path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
