"""Curated disease datasets as declarations: `schemas/datasets/<name>/` holds `dataset.yaml`
(title, sources, parameters, code lists with their reasons, the published columns with their
GB/T 39725 category and level and the view columns they come from) and `cohort.sql` (Spark
SQL over the SQL-on-FHIR views it names). Views live in `schemas/views/` and may be
overridden by a dataset's own `views/` folder. Adding a dataset is a folder, no Python."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from functools import lru_cache
from importlib.resources import files
from importlib.resources.abc import Traversable
from typing import Any

import yaml

from medgov.errors import MedgovError

_REQUIRED = ("name", "title", "description", "key", "views", "sources", "columns")
_PARAM = re.compile(r":([A-Za-z_][A-Za-z0-9_]*)")


@dataclass(frozen=True)
class Dataset:
    name: str
    title: str
    description: str
    key: str
    views: dict[str, dict[str, Any]]  # view name -> ViewDefinition
    sources: list[str]
    parameters: dict[str, Any]
    code_lists: dict[str, dict[str, str]]  # list -> code -> reason
    columns: dict[str, dict[str, Any]]  # published column -> type, comment, category, level, from
    sql: str
    depends_on: list[str] = field(default_factory=list)  # datasets the SQL reads (built first)

    @property
    def table_description(self) -> str:
        """The gold table's description (what Delta readers and catalogues show)."""
        return f"{self.title}. {self.description}"

    @property
    def fingerprint(self) -> str:
        """Changes whenever anything that decides the rows changes: a changed definition is
        rebuilt over every person, not only those a batch touched."""
        body = json.dumps([self.views, self.parameters, self.code_lists, self.sql,
                           {n: str(c["type"]) for n, c in self.columns.items()},  # a changed type casts every row
                           self.depends_on], sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(body.encode()).hexdigest()[:16]


def _root() -> Traversable:
    return files("medgov.schemas")


def _views(folder: Traversable | None) -> dict[str, dict[str, Any]]:
    if folder is None or not folder.is_dir():
        return {}
    return {p.name[:-5]: json.loads(p.read_text(encoding="utf-8")) for p in folder.iterdir() if p.name.endswith(".json")}


def shared_views() -> dict[str, dict[str, Any]]:
    """The ViewDefinitions of `schemas/views/` by name."""
    return _views(_root().joinpath("views"))


def _load(folder: Traversable) -> Dataset:
    where = f"schemas/datasets/{folder.name}"
    try:
        meta = yaml.safe_load(folder.joinpath("dataset.yaml").read_text(encoding="utf-8"))
        sql = folder.joinpath("cohort.sql").read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise MedgovError(f"{where}: {exc.filename.rsplit('/', 1)[-1]} missing") from None
    missing = [k for k in _REQUIRED if k not in (meta or {})]
    if missing:
        raise MedgovError(f"{where}/dataset.yaml: missing {', '.join(missing)}")
    if meta["name"] != folder.name:
        raise MedgovError(f"{where}/dataset.yaml: name {meta['name']!r} is not the folder's name")
    available = {**shared_views(), **_views(folder.joinpath("views"))}
    unknown = [v for v in meta["views"] if v not in available]
    if unknown:
        raise MedgovError(f"{where}: no view named {', '.join(unknown)} (schemas/views/ or the dataset's views/)")
    params = meta.get("parameters") or {}
    used = set(_PARAM.findall(_without_comments_and_strings(sql)))
    undeclared = sorted(used - set(params))
    if undeclared:
        raise MedgovError(f"{where}/cohort.sql: parameter :{undeclared[0]} is not declared in dataset.yaml")
    for name, col in meta["columns"].items():
        lacking = [k for k in ("type", "comment", "category", "level") if k not in col]
        if lacking:
            raise MedgovError(f"{where}/dataset.yaml: column {name} lacks {', '.join(lacking)}")
    if meta["key"] not in meta["columns"]:
        raise MedgovError(f"{where}/dataset.yaml: the key {meta['key']} is not a column")
    return Dataset(name=meta["name"], title=meta["title"], description=meta["description"], key=meta["key"],
                   views={v: available[v] for v in meta["views"]}, sources=list(meta["sources"]),
                   parameters=params, code_lists={k: {str(c): str(r) for c, r in (v or {}).items()}
                                                  for k, v in (meta.get("code_lists") or {}).items()},
                   columns=meta["columns"], sql=sql, depends_on=list(meta.get("depends_on") or []))


def _without_comments_and_strings(sql: str) -> str:
    """The SQL with comments and string literals blanked: a ':' in either is no parameter."""
    sql = re.sub(r"--[^\n]*", "", sql)
    return re.sub(r"'(?:[^'\\]|\\.)*'", "''", sql)


@lru_cache(maxsize=None)
def datasets() -> tuple[Dataset, ...]:
    """Every dataset of `schemas/datasets/`, each after the datasets it depends on."""
    folders = sorted((p for p in _root().joinpath("datasets").iterdir()
                      if p.is_dir() and p.joinpath("dataset.yaml").is_file()), key=lambda p: p.name)
    found = {d.name: d for d in map(_load, folders)}
    ordered: list[Dataset] = []

    def visit(d: Dataset, path: tuple[str, ...]) -> None:
        if d in ordered:
            return
        for dep in d.depends_on:
            if dep not in found:
                raise MedgovError(f"schemas/datasets/{d.name}: depends on {dep}, which is not a dataset")
            if dep in path:
                raise MedgovError(f"schemas/datasets/{d.name}: circular dependency through {dep}")
            visit(found[dep], (*path, d.name))
        ordered.append(d)

    for d in found.values():
        visit(d, ())
    return tuple(ordered)


def dataset(name: str) -> Dataset:
    """The dataset `name`."""
    for d in datasets():
        if d.name == name:
            return d
    raise MedgovError(f"no dataset named {name} (schemas/datasets/)")


def column_metadata(d: Dataset) -> dict[str, dict[str, str]]:
    """Delta column metadata of a dataset: comment + GB/T 39725 category and level."""
    return {name: {"comment": f"{c['comment']} [GB/T 39725: {c['category']}, level {c['level']}]",
                   "gbt39725.category": c["category"], "gbt39725.level": str(c["level"])}
            for name, c in d.columns.items()}
