"""The risk taxonomy policies roll up into: AIR 2024 levels 1 and 2 by default.

Zeng et al., "AI Risk Categorization Decoded" (AIR 2024). A pack may add its own
level-1 -> level-2 categories; a policy naming a category the taxonomy lacks is a
configuration error that lists the valid names.
"""

from __future__ import annotations

from collections.abc import Mapping
from collections.abc import Sequence

AIR_2024: dict[str, tuple[str, ...]] = {
    "System & Operational Risks": ("Security Risks", "Operational Misuses"),
    "Content Safety Risks": (
        "Violence & Extremism",
        "Hate/Toxicity",
        "Sexual Content",
        "Child Harm",
        "Self-harm",
    ),
    "Societal Risks": (
        "Political Usage",
        "Economic Harm",
        "Deception",
        "Manipulation",
        "Defamation",
    ),
    "Legal & Rights-Related Risks": (
        "Fundamental Rights",
        "Discrimination/Bias",
        "Privacy",
        "Criminal Activities",
    ),
}


class RiskTaxonomy:
    """Level-2 risk categories and the level-1 category each belongs to."""

    def __init__(self, levels: Mapping[str, Sequence[str]] = AIR_2024) -> None:
        self.parent: dict[str, str] = {}
        for level1, level2s in levels.items():
            for level2 in level2s:
                self.parent[level2] = level1

    def extended(self, extra: Mapping[str, Sequence[str]]) -> RiskTaxonomy:
        merged: dict[str, list[str]] = {}
        for level2, level1 in self.parent.items():
            merged.setdefault(level1, []).append(level2)
        for level1, level2s in extra.items():
            merged.setdefault(level1, []).extend(level2s)
        return RiskTaxonomy(merged)

    def __contains__(self, level2: object) -> bool:
        return level2 in self.parent

    def level1(self, level2: str) -> str:
        return self.parent[level2]

    @property
    def names(self) -> list[str]:
        return list(self.parent)
