"""Site configuration: what one deployment sets for itself, in a folder outside the package
(`--config DIR`, else the MEDGOV_CONFIG environment variable), over defaults shipped as data.

- `landing.yaml` overrides keys of `schemas/landing_limits.yaml`;
- `institutions.yaml` is the institution registry: per org code its names (Chinese and
  English), level, expected encoding, contact, and threshold overrides of the checks
  (`thresholds: {suite: {column: share}}`, e.g. `silver.observation: {patient_link: 0.7}`);
- `concept_maps/` extends the packaged concept maps (`spec.terminology`);
- `serving.yaml` overrides keys of `schemas/serving.yaml` (disclosure control, budgets).

A key that is not known, or a value of the wrong kind, is a one-line error naming the file,
the line and the field, raised before any data is touched.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ByteSize, ConfigDict, Field, PositiveFloat, PositiveInt, ValidationError

from medgov.errors import MedgovError
from medgov.spec.package_data import schema_file

CONFIG_ENV = "MEDGOV_CONFIG"
NO_SITE = "none"  # the version recorded when no site folder is configured (packaged defaults only)


class LandingLimits(BaseModel):
    """What reading one batch of the landing zone may cost (see `schemas/landing_limits.yaml`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    manifest_bytes: ByteSize
    files_per_batch: PositiveInt
    file_bytes: ByteSize
    batch_bytes: ByteSize
    batch_seconds: PositiveFloat
    hard_links: Literal["reject", "accept"]


class ServingPolicy(BaseModel):
    """Disclosure control and query limits for released counts (see `schemas/serving.yaml`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    min_cell: PositiveInt
    rounding: PositiveInt
    suppress_zero: bool
    max_cells: PositiveInt
    queries_per_day: PositiveInt
    differencing_window_days: PositiveInt
    differencing_lookback: PositiveInt


class Institution(BaseModel):
    """One institution of the registry (`institutions.yaml`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    name_zh: str
    name_en: str | None = None
    level: str | None = None  # e.g. 三级甲等 / tertiary grade A
    # the encoding its extracts are expected in (a batch declaring another is noted)
    encoding: Literal["utf-8", "gbk", "gb18030"] | None = None
    contact: str | None = None  # the institution's data contact (a department, not a patient)
    # rows naming a visit that was never delivered are held; false for a feed that sends
    # results without their visits (a quarantined visit still holds its rows)
    hold_without_visit: bool = True
    thresholds: dict[str, dict[str, Annotated[float, Field(ge=0, le=1)]]] = {}


@dataclass(frozen=True)
class SiteConfig:
    """One deployment's settings; `folder` is None where the defaults apply unchanged."""

    folder: Path | None
    landing: LandingLimits
    institutions: dict[str, Institution] = field(default_factory=dict)
    version: str = NO_SITE
    serving: ServingPolicy | None = None  # None: the packaged defaults (`serving_policy()`)

    def serving_policy(self) -> ServingPolicy:
        return self.serving or ServingPolicy.model_validate(schema_file("serving.yaml"))  # content hash of the folder's files, recorded with every stage run

    def threshold(self, org: str, suite: str, column: str | None, default: float) -> float:
        """The share of rows a check needs on `org`'s batches: the institution's override, else `default`."""
        inst = self.institutions.get(org)
        if inst is None or column is None:
            return default
        return inst.thresholds.get(suite, {}).get(column, default)

    def visits_optional(self) -> list[str]:
        """The institutions whose rows are not held for a visit that was never delivered."""
        return sorted(org for org, inst in self.institutions.items() if not inst.hold_without_visit)

    def name(self, org: str, lang: str = "zh") -> str | None:
        """The institution's name in `lang` (zh or en; falls back to the other), None when unregistered."""
        inst = self.institutions.get(org)
        if inst is None:
            return None
        return (inst.name_en or inst.name_zh) if lang == "en" else inst.name_zh


def _read(folder: Path | None, name: str) -> tuple[dict[str, Any], yaml.Node | None]:
    """A site file's mapping and its YAML node tree (for line numbers); empty when absent."""
    if folder is None or not (folder / name).exists():
        return {}, None
    try:
        text = (folder / name).read_text(encoding="utf-8")
        doc, node = yaml.safe_load(text), yaml.compose(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" line {mark.line + 1}" if mark is not None else ""
        raise MedgovError(f"{folder / name}:{at}: not readable YAML ({getattr(exc, 'problem', None) or exc})") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise MedgovError(f"{folder / name}: not readable ({type(exc).__name__})") from None
    if doc is None:
        return {}, None
    if not isinstance(doc, dict):
        raise MedgovError(f"{folder / name}: line 1: expected a mapping of setting: value")
    return doc, node


def _line(node: yaml.Node | None, path: tuple[Any, ...]) -> str:
    """` line N` of the deepest key of `path` found in the node tree ('' when not found)."""
    line = None
    for part in path:
        if not isinstance(node, yaml.MappingNode):
            break
        for k, v in node.value:
            if k.value == str(part):
                line, node = k.start_mark.line + 1, v
                break
        else:
            break
    return f" line {line}" if line else ""


def _model(model: type[BaseModel], defaults: dict[str, Any], override: dict[str, Any], where: str,
           node: yaml.Node | None = None, prefix: tuple[Any, ...] = ()) -> Any:
    try:
        return model.model_validate({**defaults, **override})
    except ValidationError as exc:
        # a misspelt key also leaves its field missing: name the misspelling
        err = sorted(exc.errors(), key=lambda e: e["type"] == "missing")[0]
        loc = (*prefix, *err["loc"])
        raise MedgovError(f"{where}:{_line(node, loc)}: {'.'.join(str(p) for p in loc)}: {err['msg']}") from None


def _institutions(folder: Path | None) -> dict[str, Institution]:
    """The registry, each threshold override checked against the check catalogue."""
    from medgov.spec.checks import suite_checks

    doc, node = _read(folder, "institutions.yaml")
    where = str(folder / "institutions.yaml") if folder else "institutions.yaml"
    out: dict[str, Institution] = {}
    for org, entry in doc.items():
        if not isinstance(entry, dict):
            raise MedgovError(f"{where}:{_line(node, (org,))}: {org}: expected name_zh, name_en, level, encoding, "
                              "contact, thresholds")
        inst = _model(Institution, {}, entry, where, node, (org,))
        for suite, columns in inst.thresholds.items():
            known = {c.column for c in suite_checks(suite)}
            for column in columns:
                if column not in known:
                    raise MedgovError(f"{where}:{_line(node, (org, 'thresholds', suite, column))}: "
                                      f"{org}.thresholds.{suite}.{column}: no such check (see `medgov checks`)")
        out[str(org)] = inst
    return out


def load_site(folder: str | Path | None = None) -> SiteConfig:
    """The site configuration in `folder` (default: $MEDGOV_CONFIG; neither: the defaults)."""
    if folder is None and os.environ.get(CONFIG_ENV):
        folder = os.environ[CONFIG_ENV]
    path = Path(folder) if folder is not None else None
    if path is not None and not path.is_dir():
        raise MedgovError(f"site configuration folder not found: {path}")
    where = str(path / "landing.yaml") if path else "landing_limits.yaml"
    override, node = _read(path, "landing.yaml")
    landing = _model(LandingLimits, schema_file("landing_limits.yaml"), override, where, node)
    serving_override, serving_node = _read(path, "serving.yaml")
    serving = _model(ServingPolicy, schema_file("serving.yaml"), serving_override,
                     str(path / "serving.yaml") if path else "serving.yaml", serving_node)
    return SiteConfig(path, landing, _institutions(path), content_hash(path) if path else NO_SITE, serving)


def content_hash(folder: Path) -> str:
    """12 hex digits over every file of `folder` (relative path and bytes), in path order:
    the same configuration gives the same version wherever it is deployed."""
    digest = hashlib.sha256()
    for f in sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith(".")):
        digest.update(f.relative_to(folder).as_posix().encode("utf-8") + b"\0")
        digest.update(f.read_bytes() + b"\0")
    return digest.hexdigest()[:12]
