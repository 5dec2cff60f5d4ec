"""Hybrid verdicts: the offline detector proposes, the VLM confirms or rejects, one documented score.

With the "heatmap" or "hybrid" proposal methods the marks come from the offline detector's heat
map, and the detector has already scored the view. The VLM then judges the marked regions. The
two are combined by a fixed, documented rule rather than a learnt one (there is rarely enough
labelled data per profile to learn one, and an operator must be able to recompute the number):

    p_vlm    = the VLM's P(anomalous): log-probabilities or stated confidence (see vlm.answers);
               a bare verdict without either counts as 0.75 (anomalous) or 0.25 (normal)
    score    = w * p_vlm + (1 - w) * s_offline,   w = 0.7 by default (``vlm_weight``)
    verdict  = anomalous when score >= 0.5

So the VLM decides whenever it is reasonably sure (p_vlm >= 0.72 or <= 0.28 wins against any
offline score with w = 0.7), and the offline score breaks near-ties. An unreadable VLM answer
leaves the offline score and verdict alone (p_vlm is not guessed). Each region the VLM confirms
gets ``w * p_vlm + (1 - w) * s_mark`` with s_mark the heat-map peak inside its mask; marks it
rejects stay in the verdict's details with their offline score, for the audit.
"""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_VLM_WEIGHT = 0.7
BARE_VERDICT_P = 0.75  # P(anomalous) of an "Anomalous" without confidence (0.25 for "Normal")


@dataclass(frozen=True)
class HybridScore:
    score: float
    anomalous: bool
    p_vlm: float | None  # None: the VLM answer could not be read, the offline result stands
    s_offline: float
    weight: float

    def explain(self) -> str:
        if self.p_vlm is None:
            return (
                f"Hybrid: the VLM answer could not be read, so the offline detector's score "
                f"{self.s_offline:.2f} stands."
            )
        return (
            f"Hybrid score {self.score:.2f} = {self.weight:.2f} × VLM {self.p_vlm:.2f} + "
            f"{1 - self.weight:.2f} × offline {self.s_offline:.2f}."
        )

    def to_dict(self) -> dict[str, float | bool | str | None]:
        return {
            "score": self.score,
            "anomalous": self.anomalous,
            "p_vlm": self.p_vlm,
            "s_offline": self.s_offline,
            "vlm_weight": self.weight,
            "rule": "score = w * p_vlm + (1 - w) * s_offline; anomalous when score >= 0.5",
        }


def vlm_probability(anomalous: bool | None, score: float | None) -> float | None:
    """The VLM's P(anomalous): its score when it has one, else the bare-verdict value, else None."""
    if anomalous is None:
        return None
    if score is not None:
        return min(1.0, max(0.0, float(score)))
    return BARE_VERDICT_P if anomalous else 1.0 - BARE_VERDICT_P


def combine(s_offline: float, p_vlm: float | None, weight: float = DEFAULT_VLM_WEIGHT) -> HybridScore:
    """The case score of the rule in the module docstring."""
    weight = min(1.0, max(0.0, float(weight)))
    s_offline = min(1.0, max(0.0, float(s_offline)))
    if p_vlm is None:
        return HybridScore(s_offline, s_offline >= 0.5, None, s_offline, weight)
    score = weight * p_vlm + (1.0 - weight) * s_offline
    return HybridScore(score, score >= 0.5, p_vlm, s_offline, weight)


def region_score(p_vlm: float | None, s_mark: float | None, weight: float = DEFAULT_VLM_WEIGHT) -> float:
    """Score of a region the VLM confirmed: the same weighting with the mark's own offline peak."""
    if p_vlm is None:
        return float(s_mark or 0.0)
    if s_mark is None:
        return p_vlm
    return weight * p_vlm + (1.0 - weight) * min(1.0, max(0.0, s_mark))
