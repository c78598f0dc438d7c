"""The lake's files that are not Delta tables (lineage events, folder listings), on a local disk
or an object store, through pyarrow's filesystems.

An object-store lake takes its settings from the environment, as delta-rs does for its tables:
`AWS_ENDPOINT_URL`, `AWS_REGION`, `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY` (or the SDK's
other credential sources), so one set of variables serves both.
"""

from __future__ import annotations

import os
from typing import Any

import pyarrow.fs as pafs


def filesystem(uri: str) -> tuple[pafs.FileSystem, str]:
    """The filesystem holding `uri` and the path inside it."""
    if "://" not in uri:
        return pafs.LocalFileSystem(), uri
    scheme, rest = uri.split("://", 1)
    if scheme in ("s3", "s3a"):
        # delayed open: an object smaller than a part goes up in one PUT, not as a multipart
        # upload (fewer requests, and S3-compatible servers differ most in multipart). Built
        # here rather than by `from_uri`, which reads the endpoint variable but cannot be told
        # that, so the endpoint is read here too.
        endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
        return pafs.S3FileSystem(endpoint_override=endpoint, allow_delayed_open=True), rest
    return pafs.FileSystem.from_uri(uri)


def folders(uri: str) -> list[str]:
    """The URIs of the folders directly under `uri` (none when it does not exist), sorted."""
    fs, path = filesystem(uri)
    infos = fs.get_file_info(pafs.FileSelector(path, allow_not_found=True))
    return sorted(f"{uri.rstrip('/')}/{i.base_name}" for i in infos if i.type == pafs.FileType.Directory)


def files(uri: str, prefix: str = "") -> list[str]:
    """The URIs of the files directly under `uri` whose names start with `prefix`, sorted."""
    fs, path = filesystem(uri)
    infos = fs.get_file_info(pafs.FileSelector(path, allow_not_found=True))
    return sorted(f"{uri.rstrip('/')}/{i.base_name}" for i in infos
                  if i.type == pafs.FileType.File and i.base_name.startswith(prefix))


def read_bytes(uri: str) -> bytes | None:
    """A file's content, or None when there is no such file."""
    fs, path = filesystem(uri)
    if fs.get_file_info(path).type != pafs.FileType.File:
        return None
    with fs.open_input_stream(path) as f:
        return f.read()


def fsspec_filesystem(uri: str) -> Any:
    """`uri`'s filesystem in fsspec's interface, for libraries that take one (the OpenLineage
    file transport's `filesystem` setting)."""
    from fsspec.implementations.arrow import ArrowFSWrapper

    return ArrowFSWrapper(filesystem(uri)[0])
