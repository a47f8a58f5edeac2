"""Severity-weighted compliance scores over final-status frames (:func:`hardnir.rollups.final_status`)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Final

import pandas as pd

#: Severity weights of the weighted compliance score (each level counts twice the one below).
SEVERITY_WEIGHTS: Final[Mapping[str, float]] = {"low": 1.0, "medium": 2.0, "high": 4.0, "critical": 8.0}


_APPLICABLE: Final[tuple[str, ...]] = ("pass", "fail", "waived")


def _weight_of(severity: pd.Series, weights: Mapping[str, float]) -> pd.Series:
    """The weight of each row's severity; KeyError naming a severity that ``weights`` lacks."""
    names = severity.astype(object)
    missing = sorted({str(s) for s in names.dropna().unique()} - set(weights))
    if missing:
        raise KeyError(f"no weight for severity {', '.join(missing)}")
    return names.map(lambda s: float(weights[str(s)])).astype("float64")


def _weighted_parts(
    final: pd.DataFrame, weights: Mapping[str, float], waived_is_compliant: bool
) -> tuple[pd.Series, pd.Series]:
    """(weight if compliant else 0, weight if applicable else 0) per row of a final-status frame."""
    status = final["status"].astype(object)
    weight = _weight_of(final["severity"], weights)
    good = ("pass", "waived") if waived_is_compliant else ("pass",)
    return weight.where(status.isin(good), 0.0), weight.where(status.isin(_APPLICABLE), 0.0)


def weighted_score(
    final: pd.DataFrame,
    weights: Mapping[str, float] = SEVERITY_WEIGHTS,
    *,
    waived_is_compliant: bool = True,
) -> float:
    """Severity-weighted compliance in percent over a final-status frame (:func:`final_status` columns).

    ``score = 100 * sum(w * compliant) / sum(w * applicable)`` where ``w`` is the weight of the row's
    severity, applicable means pass, fail or waived (not_applicable and error are left out, as in
    ``compliance_pct``) and compliant means pass (plus waived when ``waived_is_compliant``). NaN when
    nothing applies. With equal weights it equals ``compliance_pct``.
    """
    good, applicable = _weighted_parts(final, weights, waived_is_compliant)
    total = float(applicable.sum())
    return 100.0 * float(good.sum()) / total if total > 0 else math.nan


def weighted_scores(
    final: pd.DataFrame,
    by: str,
    weights: Mapping[str, float] = SEVERITY_WEIGHTS,
    *,
    waived_is_compliant: bool = True,
) -> pd.DataFrame:
    """:func:`weighted_score` per value of column ``by`` (e.g. ``host``): by, compliant_weight,
    applicable_weight, score_pct; sorted by ``by``."""
    good, applicable = _weighted_parts(final, weights, waived_is_compliant)
    parts = pd.DataFrame(
        {by: final[by].astype(object), "compliant_weight": good, "applicable_weight": applicable}
    )
    table = parts.groupby(by, sort=True).sum().reset_index()
    denominator = table["applicable_weight"].where(table["applicable_weight"] > 0)
    table["score_pct"] = (100.0 * table["compliant_weight"] / denominator).astype("float64")
    table[by] = table[by].astype("string")
    return table
