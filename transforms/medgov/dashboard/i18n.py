"""Chinese and English labels (labels.yaml) and choosing between them."""

from __future__ import annotations

from functools import lru_cache
from importlib.resources import files
from typing import Callable

import yaml

LANGUAGES = ("zh", "en")
DEFAULT = "zh"  # the platform's stewards read Chinese first


@lru_cache(maxsize=None)
def labels() -> dict[str, dict[str, str]]:
    return yaml.safe_load(files("medgov.dashboard").joinpath("labels.yaml").read_text(encoding="utf-8"))


def translator(lang: str) -> Callable[[str], str]:
    """t(key) in `lang`; an unknown key is shown as itself (a label is missing, not an error)."""
    table = labels()
    return lambda key: table.get(key, {}).get(lang, key)


def negotiate(accept_language: str | None, forced: str | None = None) -> str:
    """The language to answer in: a forced choice, else the browser's first zh/en preference."""
    if forced in LANGUAGES:
        return forced
    ranked = []
    for i, part in enumerate((accept_language or "").split(",")):
        tag, _, params = part.strip().partition(";")
        q = 1.0
        if params.strip().startswith("q="):
            try:
                q = float(params.strip()[2:])
            except ValueError:
                q = 0.0
        ranked.append((-q, i, tag.strip().lower()[:2]))
    for _, _, tag in sorted(ranked):
        if tag in LANGUAGES:
            return tag
    return DEFAULT
