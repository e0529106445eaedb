"""Where a data path points: a local file, or an object store (`s3://`, `gs://`) read through fsspec.

`s3://` and `gs://` are served by pyarrow's own S3 and GCS clients (already a dependency, in every
wheel), wrapped as fsspec filesystems: s3fs and gcsfs would bring aiobotocore, whose exact botocore
pin cannot coexist with boto3's. Credentials and endpoints come from the standard environment
(`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_ENDPOINT_URL_S3` or `AWS_ENDPOINT_URL` for an
S3-compatible store such as MinIO; Google's application default credentials,
`STORAGE_EMULATOR_HOST` for a GCS emulator). Any other scheme fsspec knows (`http://`, `file://`,
`memory://`) is fsspec's own.
"""

from __future__ import annotations

import hashlib
import os
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

if TYPE_CHECKING:
    from fsspec import AbstractFileSystem

OBJECT_STORES = ("s3", "gs", "gcs")


def is_remote(path: str) -> bool:
    """True for a URI (`scheme://...`), False for a path on this machine."""
    return "://" in path and not path.startswith("file://")


def _endpoint(variable: str, *more: str) -> tuple[str | None, str]:
    """(host:port, scheme) of an endpoint override in the environment, or (None, "https")."""
    for name in (variable, *more):
        raw = os.environ.get(name, "").strip()
        if raw:
            url = urlparse(raw if "://" in raw else f"https://{raw}")
            return url.netloc, url.scheme
    return None, "https"


def filesystem(uri: str) -> tuple[AbstractFileSystem, str]:
    """The fsspec filesystem serving `uri`, and the path inside it."""
    import fsspec

    scheme = urlparse(uri).scheme
    if scheme not in OBJECT_STORES:
        fs, path = fsspec.core.url_to_fs(uri)
        return fs, path
    from fsspec.implementations.arrow import ArrowFSWrapper
    from pyarrow import fs as arrow

    inner: Any
    if scheme == "s3":
        host, how = _endpoint("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL")
        region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
        inner = arrow.S3FileSystem(endpoint_override=host, scheme=how, region=region)
    else:
        host, how = _endpoint("STORAGE_EMULATOR_HOST")
        inner = (arrow.GcsFileSystem(endpoint_override=host, scheme=how, anonymous=True) if host
                 else arrow.GcsFileSystem())  # fmt: skip
    return ArrowFSWrapper(inner), uri.split("://", 1)[1]


def open_binary(uri: str) -> Any:
    """A binary file object for reading `uri` (a context manager)."""
    fs, path = filesystem(uri)
    return fs.open(path, "rb")


def file_digest(path: str) -> str:
    """sha256 of a data file's bytes (`sha256:<hex>`), local or in a store, streamed so large
    files are fine."""
    h = hashlib.sha256()
    with open_binary(path) if is_remote(path) else open(path, "rb") as fh:  # noqa: PTH123
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return f"sha256:{h.hexdigest()}"
