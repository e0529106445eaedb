"""Change freezes (`freeze:`): windows in which no release starts, advances or is promoted.

Each window is an RFC 5545 recurrence (`rrule`, e.g. `FREQ=WEEKLY;BYDAY=FR`) from a first start
(`start`, wall-clock time in `timezone`), lasting `duration`; without `rrule` it happens once.
Parsed by `dateutil.rrule`, the same rules a calendar's RRULE uses, so "every Friday 18:00 in
Berlin" stays 18:00 in Berlin across daylight-saving changes. Rollback is never frozen.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from typing import Any

from pydantic import Field, field_validator, model_validator

from launchbay.config.base import Duration, Section


class FreezeWindow(Section):
    """One change-freeze window, once or recurring."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9 _.-]{0,62}$")
    """How the window is named in refusals, `status` and the page."""
    start: dt.datetime
    """The first start, wall-clock time in `timezone` (e.g. 2026-12-18T18:00)."""
    duration: Duration
    """How long each occurrence lasts: seconds or 30m, 62h, 14d."""
    rrule: str | None = None
    """RFC 5545 recurrence rule, e.g. FREQ=WEEKLY;BYDAY=FR or FREQ=YEARLY;BYMONTH=12;BYMONTHDAY=20.
    None: the window happens once."""
    timezone: str = "UTC"
    """IANA time zone of `start` and the rule (e.g. Europe/Berlin)."""
    reason: str = ""
    """Said with every refusal (e.g. "year-end change freeze")."""

    @field_validator("timezone")
    @classmethod
    def _zone(cls, v: str) -> str:
        try:
            zoneinfo.ZoneInfo(v)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {v!r}: expected an IANA name, e.g. Europe/Berlin") from None
        return v

    @model_validator(mode="after")
    def _rule_parses(self) -> FreezeWindow:
        if self.rrule is not None:
            try:
                self.rule()
            except (ValueError, TypeError) as exc:
                raise ValueError(f"rrule {self.rrule!r} is not an RFC 5545 recurrence rule: {exc}") from None
        return self

    def first(self) -> dt.datetime:
        """The first start as an aware datetime."""
        zone = zoneinfo.ZoneInfo(self.timezone)
        return self.start.astimezone(zone) if self.start.tzinfo else self.start.replace(tzinfo=zone)

    def rule(self) -> Any:
        """The recurrence (`dateutil.rrule.rrule`), None for a one-off window."""
        if self.rrule is None:
            return None
        from dateutil.rrule import rrulestr

        text = self.rrule.strip().removeprefix("RRULE:")
        return rrulestr(text, dtstart=self.first())

    def occurrence(self, at: dt.datetime) -> tuple[dt.datetime, dt.datetime] | None:
        """(start, end) of the occurrence `at` falls in, None outside every occurrence."""
        span = dt.timedelta(seconds=self.duration)
        rule = self.rule()
        # The last start at or before `at`, in the rule's zone (wall-clock recurrence).
        begun = self.first() if rule is None else rule.before(at.astimezone(self.first().tzinfo), inc=True)
        if begun is None or begun > at:
            return None
        # Occurrences may overlap when a rule recurs faster than they last: the earliest still open.
        if rule is not None:
            for earlier in rule.between(at - span, at, inc=True):
                if earlier + span > at:
                    begun = earlier
                    break
        return (begun, begun + span) if begun <= at < begun + span else None

    def next_start(self, after: dt.datetime) -> dt.datetime | None:
        """The next occurrence's start after `after` (None: no more)."""
        rule = self.rule()
        if rule is None:
            return self.first() if self.first() > after else None
        found: dt.datetime | None = rule.after(after.astimezone(self.first().tzinfo))
        return found
