"""Clinical formulas (domain.md §3) as pure Python; `columns` has their Spark forms, built
from the same constants."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class CkdEpi2021:
    """Constants of the CKD-EPI 2021 creatinine equation (domain.md §3; Inker et al., NEJM 2021):
    eGFR = 142 × min(Scr/κ, 1)^α × max(Scr/κ, 1)^−1.200 × 0.9938^age × 1.012 [if female]."""

    scale: float = 142.0
    kappa_female: float = 0.7
    kappa_male: float = 0.9
    alpha_female: float = -0.241
    alpha_male: float = -0.302
    exponent_above: float = -1.200
    age_base: float = 0.9938
    female_factor: float = 1.012


CKD_EPI_2021 = CkdEpi2021()
# KDIGO GFR categories (domain.md §3): lower bounds, half-open intervals on the unrounded value
G_STAGES: tuple[tuple[float, str], ...] = ((90, "G1"), (60, "G2"), (45, "G3a"), (30, "G3b"), (15, "G4"))
G_LOWEST = "G5"
# KDIGO albuminuria categories from urine ACR in mg/g: A1 < 30 ≤ A2 ≤ 300 < A3
ACR_A2_FROM, ACR_A2_TO = 30.0, 300.0


def egfr_ckd_epi_2021(scr_mg_dl: float, age: float, female: bool) -> float:
    """CKD-EPI 2021 creatinine equation, mL/min/1.73m2."""
    c = CKD_EPI_2021
    kappa, alpha = (c.kappa_female, c.alpha_female) if female else (c.kappa_male, c.alpha_male)
    ratio = scr_mg_dl / kappa
    return (c.scale * min(ratio, 1) ** alpha * max(ratio, 1) ** c.exponent_above * c.age_base ** age
            * (c.female_factor if female else 1.0))


def g_stage(egfr: float) -> str:
    """KDIGO GFR category, half-open intervals on the unrounded value."""
    for bound, stage in G_STAGES:
        if egfr >= bound:
            return stage
    return G_LOWEST


def a_stage(acr_mg_g: float) -> str:
    """KDIGO albuminuria category from urine ACR in mg/g."""
    return "A1" if acr_mg_g < ACR_A2_FROM else ("A2" if acr_mg_g <= ACR_A2_TO else "A3")
