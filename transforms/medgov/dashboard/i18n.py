"""Chinese and English labels (labels.yaml) and choosing between them."""

from __future__ import annotations

import re
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


# Reasons are written in English by the stages (`<kind>[ in <column>][: <detail>]`, and the
# holds' "held: …"); for Chinese readers each known kind has its pattern here. Column names,
# file names and numbers stay as they are; an unknown reason is shown as written.
_REASONS_ZH: tuple[tuple[re.Pattern[str], str], ...] = tuple((re.compile(p), r) for p, r in (
    (r"^held: (patient|visit) quarantined \((.+?) line (\d+): (.+)\)$", "暂缓发布：{0}记录被隔离（{1} 第 {2} 行：{3}）"),
    (r"^held: (patient|visit) quarantined$", "暂缓发布：{0}记录被隔离"),
    (r"^held: (patient|visit) not yet delivered$", "暂缓发布：{0}记录尚未交付"),
    (r"^missing required value in (\w+)$", "必填字段 {0} 缺失"),
    (r"^unparseable date in (\w+)(: .*)?$", "{0} 日期无法解析{1}"),
    (r"^unparseable datetime in (\w+)(: .*)?$", "{0} 日期时间无法解析{1}"),
    (r"^non-numeric value in (\w+)(: .*)?$", "{0} 不是数值{1}"),
    (r"^not a finite number in (\w+)(: .*)?$", "{0} 不是有限数值（NaN、无穷大或超出双精度范围）{1}"),
    (r"^value too long in (\w+).*$", "{0} 超长（超过 FHIR 字符串 1MB 上限）"),
    (r"^exact duplicate(: superseded by line (\d+))?$", "完全重复的行（以第 {1} 行为准）"),
    (r"^duplicate key \((.+)\) in this batch(: superseded by line (\d+))?$", "批次内主键（{0}）重复（以第 {2} 行为准）"),
    (r"^wrong number of fields(: row has (\d+), header has (\d+))?$", "字段数与表头不符（本行 {1} 个，表头 {2} 个）"),
    (r"^cannot build (\w+)(: .*)?$", "无法生成 FHIR {0} 资源{1}"),
    (r"^row carries no value(: .*)?$", "该行没有任何测量值，未生成资源"),
))
_PARENT_ZH = {"patient": "患者", "visit": "就诊"}


def reason_text(reason: str, lang: str) -> str:
    """A quarantine or hold reason (or its kind) in `lang`."""
    if lang != "zh":
        return reason
    for pattern, template in _REASONS_ZH:
        m = pattern.match(reason)
        if m:
            parts = [g or "" for g in m.groups()]
            if reason.startswith("held: "):
                parts[0] = _PARENT_ZH[parts[0]]
                if len(parts) == 4:  # the quarantine reason inside the hold's
                    parts[3] = reason_text(parts[3], lang)
            return template.format(*parts).replace("（以第  行为准）", "").replace("（本行  个，表头  个）", "")
    return reason


@lru_cache(maxsize=None)
def _descriptions_zh() -> dict[str, str]:
    from medgov.spec.checks import catalogue

    return {c.description: c.description_zh for c in catalogue() if c.description_zh}


def description_text(description: str | None, lang: str) -> str:
    """A check's description (as results record it, in English) in `lang`."""
    if not description:
        return ""
    return _descriptions_zh().get(description, description) if lang == "zh" else description
