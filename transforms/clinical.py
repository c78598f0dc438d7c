"""Clinical formulas (domain.md §3) as pure Python (reference) and as Spark expressions."""

from __future__ import annotations

from pyspark.sql import Column
from pyspark.sql import functions as F


def egfr_ckd_epi_2021(scr_mg_dl: float, age: float, female: bool) -> float:
    """CKD-EPI 2021 creatinine equation (Inker et al., NEJM 2021), mL/min/1.73m2."""
    kappa, alpha = (0.7, -0.241) if female else (0.9, -0.302)
    ratio = scr_mg_dl / kappa
    return 142 * min(ratio, 1) ** alpha * max(ratio, 1) ** -1.200 * 0.9938 ** age * (1.012 if female else 1.0)


def g_stage(egfr: float) -> str:
    """KDIGO GFR category, half-open intervals on the unrounded value."""
    for bound, stage in ((90, "G1"), (60, "G2"), (45, "G3a"), (30, "G3b"), (15, "G4")):
        if egfr >= bound:
            return stage
    return "G5"


def a_stage(acr_mg_g: float) -> str:
    """KDIGO albuminuria category from urine ACR in mg/g."""
    return "A1" if acr_mg_g < 30 else ("A2" if acr_mg_g <= 300 else "A3")


def egfr_expr(scr_mg_dl: Column, age: Column, female: Column) -> Column:
    """Spark form of `egfr_ckd_epi_2021` (same constants)."""
    kappa = F.when(female, F.lit(0.7)).otherwise(F.lit(0.9))
    alpha = F.when(female, F.lit(-0.241)).otherwise(F.lit(-0.302))
    ratio = scr_mg_dl / kappa
    return (F.lit(142.0) * F.pow(F.least(ratio, F.lit(1.0)), alpha) * F.pow(F.greatest(ratio, F.lit(1.0)), F.lit(-1.2))
            * F.pow(F.lit(0.9938), age) * F.when(female, F.lit(1.012)).otherwise(F.lit(1.0)))


def g_stage_expr(egfr: Column) -> Column:
    return (F.when(egfr >= 90, "G1").when(egfr >= 60, "G2").when(egfr >= 45, "G3a").when(egfr >= 30, "G3b")
            .when(egfr >= 15, "G4").when(egfr.isNotNull(), "G5"))


def a_stage_expr(acr: Column) -> Column:
    return F.when(acr < 30, "A1").when(acr <= 300, "A2").when(acr.isNotNull(), "A3")
