"""Who may call the service: roles (`roles.yaml`, written by the site) name the datasets a
role may read and the highest GB/T 39725 level of column it may see; clients
(`clients.yaml`, written by `medgov clients add`) each have a role and the SHA-256 of their
bearer token. Tokens are 256-bit random strings shown once; only their hashes are stored,
and a presented token is compared in constant time."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from medgov.errors import MedgovError

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
HEADER = ("# Clients of `medgov serve`, written by `medgov clients add` (token hashes only; each token\n"
          "# was shown once). Remove a client's entry to revoke it.\n")


class Role(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    datasets: list[str] = Field(min_length=1)
    max_level: Annotated[int, Field(ge=1, le=4)]
    description: str = ""


class Client(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    role: str
    token_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    created: str = ""


@dataclass(frozen=True)
class Identity:
    """An authenticated caller."""

    client: str
    role: str
    datasets: frozenset[str]
    max_level: int


_cache: dict[Path, tuple[tuple[int, int], dict[str, BaseModel]]] = {}


def _load(path: Path, model: type[BaseModel]) -> dict[str, BaseModel]:
    """The file's entries, parsed again only when the file changed (every request reads them)."""
    try:
        st = path.stat()
    except FileNotFoundError:
        return {}
    stamp = (st.st_mtime_ns, st.st_size)
    cached = _cache.get(path)
    if cached is not None and cached[0] == stamp:
        return dict(cached[1])
    entries = _parse(path, model)
    _cache[path] = (stamp, entries)
    return dict(entries)


def _parse(path: Path, model: type[BaseModel]) -> dict[str, BaseModel]:
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise MedgovError(f"{path}: not readable YAML ({type(exc).__name__})") from None
    if not isinstance(doc, dict):
        raise MedgovError(f"{path}: expected a mapping of name: settings")
    out = {}
    for name, entry in doc.items():
        try:
            out[str(name)] = model.model_validate(entry)
        except ValidationError as exc:
            err = exc.errors()[0]
            loc = ".".join(str(p) for p in (name, *err["loc"]))
            raise MedgovError(f"{path}: {loc}: {err['msg']}") from None
    return out


def roles(folder: Path | None) -> dict[str, Role]:
    """The roles of `<folder>/roles.yaml` (none without a site folder)."""
    return _load(folder / "roles.yaml", Role) if folder else {}  # type: ignore[return-value]


def clients(folder: Path | None) -> dict[str, Client]:
    return _load(folder / "clients.yaml", Client) if folder else {}  # type: ignore[return-value]


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def add_client(folder: Path, name: str, role: str, created: str) -> str:
    """Register client `name` with `role`; returns its new token (shown once, never stored)."""
    if not _NAME.match(name):
        raise MedgovError(f"client name {name!r}: letters, digits, '.', '_' and '-', at most 64")
    known = roles(folder)
    if role not in known:
        listed = ", ".join(sorted(known)) or f"none: define them in {folder / 'roles.yaml'}"
        raise MedgovError(f"no role {role!r} (roles: {listed})")
    existing = clients(folder)
    if name in existing:
        raise MedgovError(f"client {name!r} exists: remove its entry from {folder / 'clients.yaml'} to replace it")
    token = secrets.token_urlsafe(32)
    existing[name] = Client(role=role, token_sha256=_digest(token), created=created)
    body = yaml.safe_dump({k: v.model_dump() for k, v in existing.items()}, sort_keys=True, allow_unicode=True)
    path = folder / "clients.yaml"
    path.write_text(HEADER + body, encoding="utf-8")
    path.chmod(0o600)
    return token


def authenticate(folder: Path | None, token: str | None) -> Identity | None:
    """The client a bearer token belongs to; None for no token or an unknown one."""
    if not token:
        return None
    wanted = _digest(token)
    found = None
    for name, c in clients(folder).items():
        if hmac.compare_digest(c.token_sha256, wanted):  # every entry compared: no early exit to time
            found = (name, c)
    if found is None:
        return None
    name, c = found
    role = roles(folder).get(c.role)
    if role is None:  # a client whose role was removed holds no rights
        return None
    return Identity(name, c.role, frozenset(role.datasets), role.max_level)
