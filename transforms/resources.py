"""Load the project's data files (contracts, concept maps, suites) shipped with the package."""

from __future__ import annotations

import json
from functools import lru_cache
from importlib.resources import files
from typing import Any

import yaml


@lru_cache(maxsize=None)
def schema_file(relpath: str) -> Any:
    """Parsed content of a YAML/JSON file under `schemas/`."""
    text = files("medgov.schemas").joinpath(relpath).read_text(encoding="utf-8")
    return json.loads(text) if relpath.endswith(".json") else yaml.safe_load(text)


def suite_names() -> list[str]:
    """Names of the Great Expectations suites stored in `expectations/`."""
    return sorted(p.name[:-5] for p in files("medgov.expectations").iterdir() if p.name.endswith(".json"))


@lru_cache(maxsize=None)
def suite_file(name: str) -> dict[str, Any]:
    """Parsed suite `expectations/<name>.json`."""
    return json.loads(files("medgov.expectations").joinpath(f"{name}.json").read_text(encoding="utf-8"))


def column_of(kwargs: dict[str, Any]) -> str | None:
    """The column(s) an expectation checks, as one name ("a,b" for pairs and lists)."""
    if "column" in kwargs:
        return kwargs["column"]
    if "column_list" in kwargs:
        return ",".join(kwargs["column_list"])
    if "column_A" in kwargs:
        return f"{kwargs['column_A']},{kwargs['column_B']}"
    return None
