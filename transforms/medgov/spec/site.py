"""Site configuration: what one deployment sets for itself, in a folder outside the package
(`--config DIR`, else the MEDGOV_CONFIG environment variable), over defaults shipped as data.

`<config>/landing.yaml` overrides keys of `schemas/landing_limits.yaml`; a key the defaults
do not have, or a value of the wrong kind, is a one-line error naming the file and the key.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ByteSize, ConfigDict, PositiveFloat, PositiveInt, ValidationError

from medgov.errors import MedgovError
from medgov.spec.package_data import schema_file

CONFIG_ENV = "MEDGOV_CONFIG"


class LandingLimits(BaseModel):
    """What reading one batch of the landing zone may cost (see `schemas/landing_limits.yaml`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    manifest_bytes: ByteSize
    files_per_batch: PositiveInt
    file_bytes: ByteSize
    batch_bytes: ByteSize
    batch_seconds: PositiveFloat
    hard_links: Literal["reject", "accept"]


@dataclass(frozen=True)
class SiteConfig:
    """One deployment's settings; `folder` is None where the defaults apply unchanged."""

    folder: Path | None
    landing: LandingLimits


def _override(folder: Path | None, name: str) -> dict[str, Any]:
    if folder is None or not (folder / name).exists():
        return {}
    try:
        doc = yaml.safe_load((folder / name).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise MedgovError(f"{folder / name}: not readable YAML ({type(exc).__name__})") from None
    if doc is None:
        return {}
    if not isinstance(doc, dict):
        raise MedgovError(f"{folder / name}: expected a mapping of setting: value")
    return doc


def _model(model: type[BaseModel], defaults: dict[str, Any], override: dict[str, Any], where: str) -> Any:
    try:
        return model.model_validate({**defaults, **override})
    except ValidationError as exc:
        err = exc.errors()[0]
        key = ".".join(str(p) for p in err["loc"])
        raise MedgovError(f"{where}: {key}: {err['msg']}") from None


def load_site(folder: str | Path | None = None) -> SiteConfig:
    """The site configuration in `folder` (default: $MEDGOV_CONFIG; neither: the defaults)."""
    if folder is None and os.environ.get(CONFIG_ENV):
        folder = os.environ[CONFIG_ENV]
    path = Path(folder) if folder is not None else None
    if path is not None and not path.is_dir():
        raise MedgovError(f"site configuration folder not found: {path}")
    where = str(path / "landing.yaml") if path else "landing_limits.yaml"
    landing = _model(LandingLimits, schema_file("landing_limits.yaml"), _override(path, "landing.yaml"), where)
    return SiteConfig(path, landing)
