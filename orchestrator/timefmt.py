"""UTC timestamps and their RFC 3339 text form (``2026-11-24T00:41:40.123456Z``).

floy keeps every time timezone-aware in UTC and writes it with a ``Z`` suffix
and microseconds, so the strings sort the same way as the instants.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone

# RFC 3339 section 5.6 date-time; the "T" and "Z" may be lower case, and a
# space is accepted in place of "T" as the RFC's note allows.
_RFC3339 = re.compile(
    r"(?P<date>\d{4}-\d{2}-\d{2})[Tt ](?P<time>\d{2}:\d{2}:\d{2})"
    r"(?:\.(?P<frac>\d{1,9}))?"
    r"(?P<tz>[Zz]|[+-]\d{2}:\d{2})",
    re.ASCII,
)


def utcnow() -> datetime:
    """Return the current time as a timezone-aware UTC datetime."""
    return datetime.now(UTC)


def format_time(dt: datetime) -> str:
    """Render an aware datetime as RFC 3339 UTC with microseconds and ``Z``.

    Raises ValueError for a naive datetime: its instant is unknown.
    """
    offset = dt.utcoffset()
    if offset is None:
        raise ValueError(f"naive datetime has no timezone: {dt!r}")
    utc = dt.astimezone(UTC).replace(tzinfo=None)
    return utc.isoformat(timespec="microseconds") + "Z"


def parse_time(s: str) -> datetime:
    """Parse an RFC 3339 timestamp (``Z`` or a numeric offset) into aware UTC.

    Fractions beyond microseconds are truncated. Raises ValueError for anything
    that is not an RFC 3339 date-time with an explicit offset.
    """
    if len(s) == 27 and s[26] == "Z" and s[10] == "T" and s[19] == ".":
        # floy's own canonical form (format_time): every stored time takes this fast path.
        try:
            return datetime.fromisoformat(s)  # 3.11 reads the Z itself: aware, in UTC
        except ValueError:
            pass  # fall through to the strict parser for its error message
    m = _RFC3339.fullmatch(s)
    if m is None:
        raise ValueError(f"not an RFC 3339 timestamp: {s!r}")
    frac = (m["frac"] or "").ljust(6, "0")[:6]
    tz_text = m["tz"]
    if tz_text in ("Z", "z"):
        tz = UTC
    else:
        sign = -1 if tz_text[0] == "-" else 1
        hours, minutes = int(tz_text[1:3]), int(tz_text[4:6])
        if hours > 23 or minutes > 59:
            raise ValueError(f"invalid UTC offset in timestamp: {s!r}")
        tz = timezone(sign * timedelta(hours=hours, minutes=minutes))
    # fromisoformat checks the calendar (month 13, Feb 30, hour 24 all fail).
    naive = datetime.fromisoformat(f"{m['date']}T{m['time']}.{frac}")
    return naive.replace(tzinfo=tz).astimezone(UTC)


def format_optional(dt: datetime | None) -> str | None:
    """Like :func:`format_time`, but ``None`` stays ``None`` (JSON ``null``)."""
    return None if dt is None else format_time(dt)
