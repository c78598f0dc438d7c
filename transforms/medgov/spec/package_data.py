"""Read the data files shipped with the package: `schemas/` (contracts, concept maps, value
sets, dataset definitions) and `expectations/` (the check catalogue)."""

from __future__ import annotations

import json
from functools import lru_cache
from importlib.resources import files
from typing import Any

import yaml


def _parse(name: str, text: str) -> Any:
    return json.loads(text) if name.endswith(".json") else yaml.safe_load(text)


@lru_cache(maxsize=None)
def schema_file(relpath: str) -> Any:
    """Parsed content of a YAML/JSON file under `schemas/`."""
    return _parse(relpath, files("medgov.schemas").joinpath(relpath).read_text(encoding="utf-8"))


def suite_names() -> list[str]:
    """Names of the check suites stored in `expectations/`."""
    return sorted(p.name[:-5] for p in files("medgov.expectations").iterdir() if p.name.endswith(".json"))


@lru_cache(maxsize=None)
def suite_file(name: str) -> dict[str, Any]:
    """Parsed suite `expectations/<name>.json`."""
    return _parse(".json", files("medgov.expectations").joinpath(f"{name}.json").read_text(encoding="utf-8"))
