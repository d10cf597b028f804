"""A loopback S3 for tests: moto's server mode on 127.0.0.1, an ephemeral port, holding a copy of a catalog.

    with s3_catalog_store(local_catalog, monkeypatch) as store:
        load_bars(store.url, BAR_TYPE)          # s3://catalog-bucket/catalogs/btc, read through moto

The server runs in a child process (a ``ThreadedMotoServer`` there), not on a thread of the test's:
Nautilus's Rust query engine holds the GIL while it waits on the network, so a server thread in the
same process could never answer it and every query of bars would hang until its 180 s retry timeout.

The endpoint and made-up credentials are set as the standard ``AWS_*`` environment variables, the
only place the project reads them from; ``SECRET`` is the secret key, distinctive so that a test can
look for it in logs and output. Other ``AWS_*`` settings of the machine are cleared for the block.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

BUCKET = "catalog-bucket"
PREFIX = "catalogs/btc"
ACCESS_KEY = "AKIAMOTOLOOPBACK0001"
SECRET = "moto-secret-8f3c1e-never-logged"
CLEARED = ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL_S3", "AWS_REGION", "AWS_CONFIG_FILE",
           "AWS_SHARED_CREDENTIALS_FILE")

_SERVER = """
import sys
from moto.server import ThreadedMotoServer
server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
server.start()
print(server.get_host_and_port()[1], flush=True)
sys.stdin.read()  # until the test closes our stdin
server.stop()
"""


@dataclass(frozen=True)
class S3Store:
    endpoint: str
    url: str  # the uploaded catalog's s3:// URL
    bucket: str = BUCKET


@contextmanager
def moto_server() -> Iterator[str]:
    """The endpoint URL of a fresh moto S3 server on loopback, stopped when the block ends."""
    with tempfile.TemporaryFile("w+") as errors:
        server = subprocess.Popen([sys.executable, "-c", _SERVER], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=errors, text=True)
        try:
            port = server.stdout.readline().strip()
            if not port:
                server.wait(timeout=10)
                errors.seek(0)
                raise RuntimeError(f"moto's server did not start (exit {server.returncode}): {errors.read()[-2000:]}")
            yield f"http://127.0.0.1:{port}"
        finally:
            server.stdin.close()
            try:
                server.wait(timeout=10)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()


@contextmanager
def s3_catalog_store(local_catalog: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[S3Store]:
    """moto on loopback with ``local_catalog`` uploaded to s3://BUCKET/PREFIX, and the AWS_* environment
    pointing at it for the block."""
    import s3fs

    with moto_server() as endpoint:
        for name in CLEARED:
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY)
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
        monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
        uploader = s3fs.S3FileSystem(endpoint_url=endpoint, key=ACCESS_KEY, secret=SECRET, skip_instance_cache=True)
        uploader.mkdir(BUCKET)
        uploader.put(f"{local_catalog}/", f"{BUCKET}/{PREFIX}", recursive=True)
        yield S3Store(endpoint, f"s3://{BUCKET}/{PREFIX}")
