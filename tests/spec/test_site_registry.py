"""The institution registry of the site configuration: names, threshold overrides per
institution, and a malformed file as one line naming the file, the line and the field."""

from __future__ import annotations

import pytest

from medgov.errors import MedgovError
from medgov.spec.site import load_site

REGISTRY = """\
H44010600031:
  name_zh: 广州市第一示例医院
  name_en: Guangzhou First Example Hospital
  level: 三级甲等
  encoding: utf-8
  contact: 信息科
  thresholds:
    silver.observation:
      patient_link: 0.6
52330100MJ98765430:
  name_zh: 某县社区卫生服务中心
  hold_without_visit: false
"""


def test_the_registry_names_institutions_and_overrides_thresholds(tmp_path):
    (tmp_path / "institutions.yaml").write_text(REGISTRY, encoding="utf-8")
    site = load_site(tmp_path)
    assert site.name("H44010600031") == "广州市第一示例医院"
    assert site.name("H44010600031", "en") == "Guangzhou First Example Hospital"
    assert site.name("52330100MJ98765430", "en") == "某县社区卫生服务中心"  # no English name: the Chinese one
    assert site.name("UNKNOWN") is None
    assert site.threshold("H44010600031", "silver.observation", "patient_link", 0.8) == 0.6
    assert site.threshold("H44010600031", "silver.condition", "patient_link", 0.8) == 0.8  # other suites keep theirs
    assert site.threshold("52330100MJ98765430", "silver.observation", "patient_link", 0.8) == 0.8
    assert site.visits_optional() == ["52330100MJ98765430"]


def test_without_a_registry_the_catalogue_thresholds_apply():
    site = load_site()
    assert site.institutions == {} and site.threshold("ANY", "silver.observation", "patient_link", 0.8) == 0.8


@pytest.mark.parametrize("text,reason", [
    (REGISTRY.replace("name_zh: 某县", "nam_zh: 某县"), "line 11: 52330100MJ98765430.nam_zh: Extra inputs"),
    (REGISTRY.replace("patient_link: 0.6", "patient_link: 1.5"),
     "line 9: H44010600031.thresholds.silver.observation.patient_link: Input should be less than or equal to 1"),
    (REGISTRY.replace("patient_link: 0.6", "patient_lnk: 0.6"),
     "line 9: H44010600031.thresholds.silver.observation.patient_lnk: no such check"),
    (REGISTRY.replace("silver.observation:", "silver.observatio:"),
     "line 9: H44010600031.thresholds.silver.observatio.patient_link: no such check"),
    ("H1: [a, b]\n", "line 1: H1: expected name_zh"),
    ("H1:\n  name_zh: [unclosed\n", "line 3: not readable YAML"),
])
def test_a_malformed_registry_is_one_line_with_file_line_and_field(tmp_path, text, reason):
    (tmp_path / "institutions.yaml").write_text(text, encoding="utf-8")
    with pytest.raises(MedgovError) as exc:
        load_site(tmp_path)
    message = str(exc.value)
    assert "institutions.yaml" in message and reason in message and "\n" not in message, message
