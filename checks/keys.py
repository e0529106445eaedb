"""Where signing keys come from: config, environment (for CI), or the local state directory.

`LAUNCHBAY_SIGNING_KEY` may hold a path or the PEM text itself (a CI secret); PEM text is written
to a private temporary file (0600) because model-signing reads keys from paths.
"""

from __future__ import annotations

import atexit
import os
import stat
import tempfile
from pathlib import Path

from launchbay.checks.signature import PRIVATE_KEY, PUBLIC_KEY
from launchbay.config import LaunchbayConfig
from launchbay.home import Home

SIGNING_KEY_ENV = "LAUNCHBAY_SIGNING_KEY"
TRUSTED_KEYS_ENV = "LAUNCHBAY_TRUSTED_KEYS"


def keys_dir(home: Home) -> Path:
    """The local key directory under the state directory."""
    return home.root / "keys"


def signing_key(cfg: LaunchbayConfig, home: Home) -> Path:
    """Path of the private key to sign with (it may not exist; signing then says how to create one)."""
    if cfg.signing.private_key:
        return Path(cfg.resolve_path(cfg.signing.private_key))
    env = os.environ.get(SIGNING_KEY_ENV, "").strip()
    if env.startswith("-----BEGIN"):
        return _pem_to_private_file(env)
    if env:
        return Path(env)
    return keys_dir(home) / PRIVATE_KEY


def trusted_keys(cfg: LaunchbayConfig, home: Home) -> list[Path]:
    """Public keys a deployment trusts: config, else `$LAUNCHBAY_TRUSTED_KEYS`, else the local key."""
    if cfg.signing.trusted_keys:
        return [Path(cfg.resolve_path(k)) for k in cfg.signing.trusted_keys]
    env = os.environ.get(TRUSTED_KEYS_ENV, "").strip()
    if env:
        return [Path(p) for p in env.split(os.pathsep) if p]
    return [keys_dir(home) / PUBLIC_KEY]


def _pem_to_private_file(pem: str) -> Path:
    fd, name = tempfile.mkstemp(prefix="launchbay-key-", suffix=".pem")
    os.fchmod(fd, stat.S_IRUSR | stat.S_IWUSR)
    with os.fdopen(fd, "w") as fh:
        fh.write(pem if pem.endswith("\n") else pem + "\n")
    atexit.register(lambda: Path(name).unlink(missing_ok=True))
    return Path(name)
