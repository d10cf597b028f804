"""A catalog in object storage (``s3://bucket/prefix``), read through Nautilus's own fsspec support.

``ParquetDataCatalog`` reads a catalog through two clients. Its Python side (instruments, the
listing of bar files, their intervals) goes through fsspec's s3fs, which finds the endpoint,
region and credentials as botocore does: the standard ``AWS_*`` environment variables
(``AWS_ENDPOINT_URL`` for an S3-compatible store such as MinIO). Its bars go through the Rust
query engine (DataFusion's object_store), which reads no environment: it takes only the storage
options it is handed (``fs_rust_storage_options``), and when a query fails it does not fall back
to pyarrow, it raises (without options it asks EC2's instance metadata for credentials). So the
same ``AWS_*`` variables are handed to it here (:func:`s3_rust_options`): both sides then read the
same store with the same identity, whatever the endpoint. The options live in the catalog object
only; nothing here logs them.

``ParquetDataCatalog.from_uri`` is not used: in nautilus_trader 1.231 it passes an s3 URL's
bucket to s3fs as a ``host`` option, which s3fs refuses ("unexpected keyword argument 'host'").

Only reading: the catalog's writers (``download``, ``import-klines``) lock and move local files.
"""

from __future__ import annotations

import os

from fsspec.core import split_protocol
from nautilus_trader.persistence.catalog import ParquetDataCatalog

# Each option of the Rust S3 store, from the first of these environment variables that is set
# (the order botocore reads them in: a service-specific endpoint before the general one).
S3_ENVIRONMENT = {
    "endpoint_url": ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"),
    "region": ("AWS_DEFAULT_REGION", "AWS_REGION"),
    "access_key_id": ("AWS_ACCESS_KEY_ID",),
    "secret_access_key": ("AWS_SECRET_ACCESS_KEY",),
    "session_token": ("AWS_SESSION_TOKEN",),
}


def is_url(location: str | os.PathLike) -> bool:
    """Whether ``location`` is a URL with a protocol (``s3://...``) rather than a local path."""
    return split_protocol(os.fspath(location))[0] is not None


def s3_rust_options(environ=os.environ) -> dict[str, str]:
    """The Rust S3 store's options from the ``AWS_*`` environment (see the module's docstring); an
    ``http://`` endpoint (a store on a private network or loopback) is allowed explicitly, as the
    Rust store refuses plain HTTP otherwise."""
    options = {}
    for option, names in S3_ENVIRONMENT.items():
        value = next((environ[name] for name in names if environ.get(name)), None)
        if value is not None:
            options[option] = value
    if options.get("endpoint_url", "").startswith("http://"):
        options["allow_http"] = "true"
    return options


def s3_catalog(path: str) -> ParquetDataCatalog:
    """The catalog at ``path`` (``bucket/prefix``, the s3:// URL less its protocol), not yet looked at."""
    options = s3_rust_options()
    # s3fs is handed the endpoint too, so that its instance cache (keyed by its arguments) never
    # serves one made for another endpoint; it reads the credentials from the environment itself.
    fs_options = {"endpoint_url": options["endpoint_url"]} if "endpoint_url" in options else {}
    return ParquetDataCatalog(path, fs_protocol="s3", fs_storage_options=fs_options, fs_rust_storage_options=options)
