"""Delivery windows a customer can read: an arrival interval rounded outward to a slot grid on the local clock.

Rounding outward only widens the interval, so the stated confidence is a lower bound on coverage.
The grid is anchored at local midnight (15-minute slots: :00, :15, :30, :45).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo


@dataclass(frozen=True)
class SlotWindow:
    start: datetime  # aware, on the customer's clock
    end: datetime

    def clock(self, moment: datetime) -> str:
        """'14:15'; with the zone's abbreviation (or UTC offset) where the wall clock alone is ambiguous: the
        window spans a clock change, or one of its ends falls in an hour the clock shows twice."""
        text = moment.strftime("%H:%M")
        return f"{text} {zone_name(moment)}" if self.ambiguous() else text

    def ambiguous(self) -> bool:
        if self.start.utcoffset() != self.end.utcoffset():
            return True
        zone = self.start.tzinfo
        return any(
            isinstance(zone, ZoneInfo) and len(_real_instants(m.replace(tzinfo=None), zone)) > 1
            for m in (self.start, self.end)
        )

    def text(self) -> str:
        """'arrives between 14:15 and 14:45'; dates are named when the window is not within one day."""
        start, end = self.clock(self.start), self.clock(self.end)
        if self.start.date() == end_day(self.end):
            return f"arrives between {start} and {end}"
        return f"arrives between {start} on {day_name(self.start)} and {end} on {day_name(self.end)}"


def zone_name(moment: datetime) -> str:
    """The zone's abbreviation at that moment ('EDT'), or its UTC offset where the zone has no letters
    ('+0330')."""
    name = moment.strftime("%Z")
    return name if name and name[0].isalpha() else moment.strftime("%z")


def day_name(moment: datetime) -> str:
    return f"{moment.day} {moment.strftime('%b')}"


def end_day(moment: datetime):
    """A window ending exactly at midnight belongs to the day before (00:00 reads as 24:00)."""
    if moment.hour == 0 and moment.minute == 0:
        return (moment - timedelta(minutes=1)).date()
    return moment.date()


DST_SHIFT_MAX = timedelta(hours=2)  # no zone moves its clock by more than this at once


def _real_instants(naive: datetime, zone: ZoneInfo) -> list[datetime]:
    """The instants at which the clock of `zone` shows `naive`: one, two (clocks going back) or none
    (skipped by a forward jump)."""
    readings = {naive.replace(tzinfo=zone, fold=fold).astimezone(UTC) for fold in (0, 1)}
    return sorted(i for i in readings if i.astimezone(zone).replace(tzinfo=None) == naive)


def _boundaries_near(moment: datetime, slot_minutes: int, zone: ZoneInfo) -> list[datetime]:
    """Every instant near `moment` at which the local clock shows a slot boundary (sorted, UTC)."""
    local = moment.astimezone(zone).replace(tzinfo=None)
    midnight = local.replace(hour=0, minute=0, second=0, microsecond=0)
    slot = timedelta(minutes=slot_minutes)
    margin = DST_SHIFT_MAX + slot
    if (moment - margin).astimezone(zone).utcoffset() == (moment + margin).astimezone(zone).utcoffset():
        # no clock change nearby (the usual case): the two boundaries around the moment suffice
        floor = midnight + ((local - midnight) // slot) * slot
        return [i for naive in (floor, floor + slot) for i in _real_instants(naive, zone)]
    first = midnight + ((local - margin - midnight) // slot) * slot
    last = local + margin
    instants, naive = [], first
    while naive <= last:
        instants.extend(_real_instants(naive, zone))
        naive += slot
    return sorted(instants)


# Instants are compared in UTC: Python compares two datetimes of one zone by wall clock, ignoring `fold`,
# which is wrong in the repeated hour when clocks go back.


def floor_to_slot(moment: datetime, slot_minutes: int, zone: ZoneInfo) -> datetime:
    """The latest instant at or before `moment` whose local clock in `zone` shows a slot boundary."""
    instant = moment.astimezone(UTC)
    return max(i for i in _boundaries_near(instant, slot_minutes, zone) if i <= instant).astimezone(zone)


def ceil_to_slot(moment: datetime, slot_minutes: int, zone: ZoneInfo) -> datetime:
    """The earliest instant at or after `moment` whose local clock in `zone` shows a slot boundary."""
    instant = moment.astimezone(UTC)
    return min(i for i in _boundaries_near(instant, slot_minutes, zone) if i >= instant).astimezone(zone)


def slot_window(lower: datetime, upper: datetime, slot_minutes: int, zone: ZoneInfo) -> SlotWindow:
    """[lower, upper] rounded outward to the slot grid of the customer's clock."""
    if upper.astimezone(UTC) < lower.astimezone(UTC):
        raise ValueError("upper must not precede lower")
    start = floor_to_slot(lower, slot_minutes, zone)
    end = ceil_to_slot(upper, slot_minutes, zone)
    if end.astimezone(UTC) <= start.astimezone(UTC):  # lower == upper on a boundary: still show one slot
        end = ceil_to_slot(start + timedelta(seconds=1), slot_minutes, zone)
    return SlotWindow(start=start, end=end)
