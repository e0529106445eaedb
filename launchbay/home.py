"""The local state directory: everything launchbay writes on this machine lives under one root.

The root is `$LAUNCHBAY_HOME` when set, else `.launchbay/` beside the `launchbay.yaml` in use, so
every verb finds the same ledger, registry and keys whichever directory it is started from.
Keeping state in one place makes a demo disposable (`rm -r .launchbay`) and lets tests isolate
themselves by pointing `LAUNCHBAY_HOME` at a temporary directory.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

HOME_ENV = "LAUNCHBAY_HOME"


@dataclass(frozen=True)
class Home:
    """Paths of the local state directory."""

    root: Path

    @classmethod
    def resolve(cls, config: Path | None = None) -> Home:
        """The state directory (not created yet): `$LAUNCHBAY_HOME`, else `.launchbay/` beside the
        config file `config` (which need not exist yet), else in the current directory."""
        raw = os.environ.get(HOME_ENV)
        if raw:
            root = Path(raw)
        else:
            base = Path(config).absolute().parent if config is not None else Path.cwd()
            root = base / ".launchbay"
        return cls(root.resolve())

    @property
    def mlflow_db(self) -> Path:
        """SQLite database of the embedded MLflow tracking server and registry."""
        return self.root / "mlflow.db"

    @property
    def artifacts(self) -> Path:
        """Artifact root for MLflow experiments created by launchbay."""
        return self.root / "artifacts"

    @property
    def reports(self) -> Path:
        """Gate reports, one directory per pipeline run."""
        return self.root / "reports"

    @property
    def cache(self) -> Path:
        """Results worth reusing, each under a digest of everything that decides it."""
        return self.root / "cache"

    @property
    def workflows(self) -> Path:
        """Scratch space of the local workflow executor (task inputs and outputs)."""
        return self.root / "workflows"

    def ensure(self) -> Home:
        """Create the root directory (private: 0700) if needed and return self."""
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.root.chmod(0o700)  # also a directory made before launchbay kept its state private
        return self
