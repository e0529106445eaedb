"""Data on an object store: `s3://` paths read through fsspec (pyarrow's S3 client), against
moto's S3 server on a loopback port; the data gate judges them as it judges a local file."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from harness import closed_port

from launchbay import storage
from launchbay.checks.data_gate import DataUnreadable, check_data, read_frame
from launchbay.checks.verdict import Verdict
from launchbay.config import LaunchbayConfig, load_config
from launchbay.pipelines.dataset import file_digest


@pytest.fixture(scope="module")
def s3() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    port = closed_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@pytest.fixture
def bucket(s3: str, monkeypatch: pytest.MonkeyPatch) -> str:
    import boto3

    env = {"AWS_ENDPOINT_URL_S3": s3, "AWS_ACCESS_KEY_ID": "testing",
           "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}  # fmt: skip
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    client = boto3.client("s3", endpoint_url=s3)
    name = f"data-{closed_port()}"
    client.create_bucket(Bucket=name)
    return name


@pytest.fixture
def cfg(project: Callable[..., Path]) -> LaunchbayConfig:
    return load_config(project(rows=2000))


def _upload(bucket: str, key: str, local: Path) -> str:
    import boto3

    boto3.client("s3").upload_file(str(local), bucket, key)
    return f"s3://{bucket}/{key}"


def test_the_data_gate_reads_parquet_and_csv_from_s3_as_it_reads_a_file(
    cfg: LaunchbayConfig, bucket: str, tmp_path: Path
) -> None:
    local = Path(cfg.resolve_path(cfg.data.path))
    uri = _upload(bucket, "week-1/transactions.parquet", local)
    report, frame = check_data(uri, cfg)
    assert report.verdict is Verdict.PASS, report.to_markdown()
    assert frame is not None and frame.equals(read_frame(str(local)))
    assert file_digest(uri) == file_digest(str(local))  # the run records the same digest
    csv = tmp_path / "t.csv"
    read_frame(str(local)).to_csv(csv, index=False)
    assert len(read_frame(_upload(bucket, "week-1/t.csv", csv))) == len(frame)


def test_a_missing_object_or_bucket_is_named_not_a_traceback(cfg: LaunchbayConfig, bucket: str) -> None:
    with pytest.raises(DataUnreadable, match=f"not found: s3://{bucket}/nope.parquet"):
        read_frame(f"s3://{bucket}/nope.parquet")
    report, frame = check_data("s3://no-such-bucket-here/x.parquet", cfg)
    assert report.verdict is Verdict.FAIL and frame is None
    assert "s3://no-such-bucket-here/x.parquet" in report.to_markdown()
    with pytest.raises(DataUnreadable, match=r"unsupported file type '\.json'"):
        read_frame(f"s3://{bucket}/x.json")


def test_local_paths_and_other_fsspec_urls_are_not_object_stores(tmp_path: Path) -> None:
    assert not storage.is_remote(str(tmp_path / "a.parquet"))
    assert not storage.is_remote("file:///tmp/a.parquet")
    assert storage.is_remote("s3://b/a.parquet") and storage.is_remote("gs://b/a.parquet")
    _fs, path = storage.filesystem("memory://x/a.csv")
    assert path.endswith("x/a.csv")
