"""Reading when a usage limit resets off a CLI's screen (supervisor/limits.py): the next
moment the named time comes round, in the named zone (UTC when it names none, or one
that does not exist)."""

from __future__ import annotations

from datetime import UTC, datetime

from farmbot.supervisor.limits import reset_time

NOW = datetime(2026, 7, 1, 14, 0, tzinfo=UTC).timestamp()  # 16:00 in Berlin (summer time)


def at(hour: int, minute: int = 0, day: int = 1) -> float:
    return datetime(2026, 7, day, hour, minute, tzinfo=UTC).timestamp()


def test_a_time_later_today_is_today_and_an_earlier_one_tomorrow() -> None:
    assert reset_time("5-hour limit reached ∙ resets 3:45pm", NOW) == at(15, 45)
    assert reset_time("Your limit resets at 9am", NOW) == at(9, day=2)
    assert reset_time("limit reached, resets 12am", NOW) == at(0, day=2)


def test_a_named_zone_is_read_in_that_zone() -> None:
    assert reset_time("resets 6pm (Europe/Berlin)", NOW) == at(16)
    assert reset_time("resets 3pm (UTC)", NOW) == at(15)


def test_an_unknown_zone_is_read_as_utc() -> None:
    assert reset_time("resets 6pm (Nowhere/Atlantis)", NOW) == at(18)


def test_no_time_or_an_impossible_one_is_none() -> None:
    assert reset_time("usage limit reached", NOW) is None
    assert reset_time("resets 25:00", NOW) is None
