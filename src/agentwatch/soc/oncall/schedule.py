"""Who is on call at a given instant: the rotation's shifts, with its overrides carved in.

Times are whole microseconds since the epoch (UTC), so that shift arithmetic is exact: shift
``k`` (``k = (t - start) // shift``) runs ``[start + k*shift, start + (k+1)*shift)`` and is held by
``members[k % len(members)]``. An override ``[from, until)`` puts its member on call over
whatever the shifts say, before the start too; overrides never overlap (the API refuses it).
Before the start, outside any override, nobody is on call.

The answer at ``t`` is the segment of the timeline holding ``t``: its member (None: nobody),
``since`` (None: nobody since ever) and ``until`` (the next handoff: the end of the shift or the
override, or the start of the next override). ``next`` is the first segment after it that somebody
holds; it may name the same member again (an override of the member whose shift follows).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MICRO = timedelta(microseconds=1)
HOUR_US = 3_600_000_000


def to_us(dt: datetime) -> int:
    """An aware datetime as whole microseconds since the epoch."""
    return (dt - EPOCH) // MICRO


def from_us(us: int, offset_minutes: int = 0) -> str:
    """RFC 3339 text of ``us`` in the given UTC offset (``Z`` for UTC)."""
    tz = timezone(timedelta(minutes=offset_minutes))
    dt = (EPOCH + timedelta(microseconds=us)).astimezone(tz)
    text = dt.isoformat()
    return text.replace("+00:00", "Z") if offset_minutes == 0 else text


@dataclass(frozen=True)
class Override:
    member: str
    start: int  # microseconds, inclusive
    end: int  # exclusive


@dataclass(frozen=True)
class Rotation:
    members: tuple[str, ...]
    shift_us: int
    start: int
    overrides: tuple[Override, ...] = ()


@dataclass(frozen=True)
class Segment:
    member: str | None
    since: int | None
    until: int
    override: bool


def segment_at(rot: Rotation, t: int) -> Segment:
    """The stretch of the timeline holding ``t`` (see the module's docstring)."""
    for ov in rot.overrides:
        if ov.start <= t < ov.end:
            return Segment(ov.member, ov.start, ov.end, True)
    since: int | None
    if t < rot.start:
        member, since, until = None, None, rot.start
    else:
        k = (t - rot.start) // rot.shift_us
        since = rot.start + k * rot.shift_us
        until = since + rot.shift_us
        member = rot.members[k % len(rot.members)]
    for ov in rot.overrides:
        if ov.end <= t and (since is None or ov.end > since):
            since = ov.end
        if t < ov.start < until:
            until = ov.start
    return Segment(member, since, until, False)


def on_call(rot: Rotation, t: int) -> tuple[Segment, Segment]:
    """(the segment holding ``t``, the next one somebody holds). Gaps (nobody on call) come
    only before the start, so at most two steps find the next holder."""
    now = segment_at(rot, t)
    nxt = segment_at(rot, now.until)
    while nxt.member is None:
        nxt = segment_at(rot, nxt.until)
    return now, nxt
