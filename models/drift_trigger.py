"""When monitors ask for retraining, and how many requests that makes: one per drift event.

Pure logic behind the drift sensor (`pipelines.automation`): the sensor turns monitor materializations into
`MonitorEvent`s and keeps a `TriggerState` as its cursor.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import date


@dataclass(frozen=True)
class MonitorEvent:
    """One monitor result as the sensor sees it (a materialization of the drift or performance asset)."""

    storage_id: int
    partition: str  # the served day, YYYY-MM-DD
    champion_version: int | None
    trigger: bool
    reason: str = ""


@dataclass(frozen=True)
class TriggerState:
    """The sensor's cursor: events up to `after_storage_id` are seen; the last request and its champion."""

    after_storage_id: int = 0
    requested_version: int | None = None
    requested_partition: str | None = None

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str | None) -> TriggerState:
        return cls(**json.loads(text)) if text else cls()


def _days_between(earlier: str, later: str) -> int:
    return (date.fromisoformat(later) - date.fromisoformat(earlier)).days


def retraining_requests(
    events: Sequence[MonitorEvent], state: TriggerState, cooldown_days: int = 3
) -> tuple[list[MonitorEvent], TriggerState]:
    """Which triggering events become retraining requests: one per drift event.

    A drift event is a run of triggering days against one champion: the first triggering day asks for a
    retraining, later ones against the same champion do not (the request is already made, and the monitor
    keeps firing until a new champion serves). If the champion has not changed `cooldown_days` after the
    request (the candidate was blocked or not better), the next triggering day asks again.
    """
    requests: list[MonitorEvent] = []
    for event in sorted(events, key=lambda e: e.storage_id):
        if event.storage_id <= state.after_storage_id:
            continue
        fresh = (
            state.requested_partition is None
            or event.champion_version != state.requested_version
            or _days_between(state.requested_partition, event.partition) >= cooldown_days
        )
        already = any(r.partition == event.partition for r in requests)
        if event.trigger and fresh and not already:
            requests.append(event)
            state = TriggerState(event.storage_id, event.champion_version, event.partition)
        else:
            state = TriggerState(event.storage_id, state.requested_version, state.requested_partition)
    return requests, state
