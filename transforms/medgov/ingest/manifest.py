"""The batch manifest of the extract interface (extract-spec §1) and its verification."""

from __future__ import annotations

import hashlib
import json
import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from medgov.errors import BatchRejected
from medgov.ingest.boundary import MANIFEST, Landed
from medgov.ingest.landing import BatchRef
from medgov.spec.contracts import TABLES

_FILE_NAME = re.compile(r"[A-Za-z0-9_.-]{1,128}")


class ManifestFile(BaseModel):
    model_config = ConfigDict(extra="allow")
    name: str
    table: str
    rows: int = Field(ge=0)
    sha256: str
    # extract-spec §1 requires it; when a source leaves it out the bytes are detected and noted
    encoding: Literal["utf-8", "utf-8-sig", "gbk", "gb18030"] | None = None

    @field_validator("name")
    @classmethod
    def _plain_name(cls, v: str) -> str:
        # A manifest names files inside its own batch folder: no separators, no "..".
        if not _FILE_NAME.fullmatch(v) or v in (".", "..") or ".." in v:
            raise ValueError(f"file name {v!r} is not a plain file name inside the batch folder")
        return v

    @field_validator("table")
    @classmethod
    def _known_table(cls, v: str) -> str:
        if v not in TABLES:
            raise ValueError(f"unknown table {v!r} (expected one of {', '.join(TABLES)})")
        return v

    @field_validator("sha256")
    @classmethod
    def _hex(cls, v: str) -> str:
        if not re.fullmatch(r"[0-9a-fA-F]{64}", v):
            raise ValueError("sha256 must be 64 hexadecimal characters")
        return v.lower()


class Manifest(BaseModel):
    model_config = ConfigDict(extra="allow")
    spec_version: Literal["1"]
    org_code: str
    batch_id: str
    source_system: str
    vendor: str | None = None
    extracted_at: str
    files: list[ManifestFile] = Field(min_length=1)


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err["loc"])
    return f"{where}: {err['msg']}" if where else err["msg"]


def parse_manifest(batch: BatchRef, raw: bytes) -> Manifest:
    """Parse and check the bytes of `manifest.json`."""
    try:
        doc = json.loads(raw.decode("utf-8-sig"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BatchRejected(f"manifest.json is not valid JSON: {exc}") from None
    except RecursionError:
        raise BatchRejected("manifest.json is not valid JSON: nested too deeply") from None
    try:
        manifest = Manifest.model_validate(doc)
    except ValidationError as exc:
        raise BatchRejected(f"manifest.json invalid: {_first_error(exc)}") from None
    if manifest.org_code != batch.org_code or manifest.batch_id != batch.batch_id:
        raise BatchRejected(
            f"manifest names {manifest.org_code}/{manifest.batch_id} but lies in {batch.org_code}/{batch.batch_id}"
        )
    tables = [f.table for f in manifest.files]
    if len(set(tables)) != len(tables):
        raise BatchRejected("manifest lists the same table twice")
    names = [f.name for f in manifest.files]
    if len(set(names)) != len(names):
        raise BatchRejected("manifest lists the same file twice")
    return manifest


def check_files(landed: Landed, manifest: Manifest) -> dict[str, bytes]:
    """Every listed file present with the declared sha256; no unlisted data file. Returns the
    bytes by file name."""
    listed = {f.name for f in manifest.files}
    extra = sorted(n for n in landed.files if n != MANIFEST and n not in listed)
    if extra:
        raise BatchRejected(f"file(s) present but not listed in manifest.json: {', '.join(extra)}")
    contents: dict[str, bytes] = {}
    for f in manifest.files:
        if f.name not in landed.files:
            raise BatchRejected(f"{f.name} is listed in manifest.json but absent")
        data = landed.files[f.name]
        digest = hashlib.sha256(data).hexdigest()
        if digest != f.sha256:
            raise BatchRejected(f"{f.name}: sha256 {digest[:12]}… does not match manifest {f.sha256[:12]}…")
        contents[f.name] = data
    return contents
