"""The four severity bands an SLA target is set for, their severities (0-10) and the targets
a fresh store starts with."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Band:
    id: str
    low: int  # lowest severity in the band
    high: int  # highest severity in the band
    acknowledge_minutes: int  # the default target
    resolve_minutes: int


BANDS: tuple[Band, ...] = (
    Band("critical", 9, 10, 15, 4 * 60),
    Band("high", 7, 8, 60, 24 * 60),
    Band("medium", 4, 6, 4 * 60, 3 * 24 * 60),
    Band("low", 0, 3, 24 * 60, 7 * 24 * 60),
)
BY_ID = {b.id: b for b in BANDS}
BAND_IDS = tuple(BY_ID)

# the bounds of a target: one minute to 30 days to acknowledge, 90 days to resolve
MAX_ACKNOWLEDGE_MINUTES = 30 * 24 * 60
MAX_RESOLVE_MINUTES = 90 * 24 * 60


def band_of(severity: int) -> Band:
    """The band of a severity (clamped to 0-10)."""
    for band in BANDS:
        if severity >= band.low:
            return band
    return BANDS[-1]
