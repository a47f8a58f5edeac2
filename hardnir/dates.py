"""Today's date in UTC (waiver expiry is judged on it)."""

from __future__ import annotations

from datetime import UTC, date, datetime


def today() -> date:
    return datetime.now(UTC).date()
