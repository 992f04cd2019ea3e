"""Reading "usage limit reached, resets at 3:45pm" off a pane: when does it reset?

Only an agent that hits its usage limit needs this, so the pattern is compiled, and the
time zone database (``zoneinfo``, ~6 ms with the ``sysconfig`` it reads) loaded, on the
first limit read rather than when the daemon starts.
"""

from __future__ import annotations

import functools
import re
from datetime import UTC, datetime, timedelta, tzinfo

DEFAULT_PAUSE = 3600.0  # when the CLI names no reset time we can read


@functools.cache
def _reset() -> re.Pattern[str]:
    return re.compile(
        r"(?i)reset[s]?\b[^0-9]{0,12}?(\d{1,2})(?::(\d{2}))?\s*(am|pm)?"
        r"(?:\s*\(?\s*(UTC|GMT|[A-Za-z]+/[A-Za-z_]+(?:/[A-Za-z_]+)?)\s*\)?)?"
    )


def reset_time(line: str, now: float) -> float | None:
    """The next moment (epoch seconds) matching the reset time named in ``line``.

    Times without a zone are read as UTC. Returns None when the line names no time.
    """
    match = _reset().search(line)
    if match is None:
        return None
    hour, minute = int(match.group(1)), int(match.group(2) or 0)
    meridiem = (match.group(3) or "").lower()
    if meridiem == "pm" and hour < 12:
        hour += 12
    elif meridiem == "am" and hour == 12:
        hour = 0
    if hour > 23 or minute > 59:
        return None
    zone = _zone(match.group(4))
    current = datetime.fromtimestamp(now, zone)
    candidate = current.replace(hour=hour, minute=minute, second=0, microsecond=0)
    if candidate <= current:
        candidate += timedelta(days=1)
    return candidate.timestamp()


def _zone(name: str | None) -> tzinfo:
    if not name or name.upper() in ("UTC", "GMT"):
        return UTC
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return UTC
