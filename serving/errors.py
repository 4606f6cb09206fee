"""Client errors the endpoints raise, in the shape of BentoML's own validation errors.

Every 4xx body is `{"error": "<field>: <message>", "detail": [{"type", "loc", "msg"}]}`, where `loc` is the
path of the offending field (e.g. ["legs", 3, "origin_lat"]).
"""

from __future__ import annotations

from collections.abc import Sequence

Loc = tuple[str | int, ...]


def dotted(loc: Sequence[str | int]) -> str:
    """["legs", 0, "origin_lat"] -> "legs[0].origin_lat"; [] -> "body"."""
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "body"


def error_body(errors: Sequence[dict[str, object]]) -> dict[str, object]:
    """A readable summary naming each field, plus the structured list."""
    summary = "; ".join(f"{dotted(e.get('loc') or ())}: {e.get('msg')}" for e in errors[:5])  # type: ignore[arg-type]
    if len(errors) > 5:
        summary += f"; and {len(errors) - 5} more"
    return {"error": summary, "detail": list(errors)}


class InvalidRequest(ValueError):
    """A request the model cannot answer; `status` is the HTTP status (always 4xx). `more` holds further
    (loc, message) pairs of the same kind, so one answer names every leg at fault."""

    def __init__(
        self,
        loc: Loc,
        message: str,
        status: int = 400,
        kind: str = "value_error",
        more: Sequence[tuple[Loc, str]] = (),
    ) -> None:
        super().__init__(f"{dotted(loc)}: {message}")
        self.loc, self.message, self.status, self.kind = loc, message, status, kind
        self.more = list(more)

    def body(self) -> dict[str, object]:
        faults = [(self.loc, self.message), *self.more]
        return error_body([{"type": self.kind, "loc": list(loc), "msg": msg} for loc, msg in faults])


def check_count(loc: Loc, count: int, maximum: int, what: str) -> None:
    """Reject an empty list or one over the configured maximum (413: the request is too large)."""
    if count == 0:
        raise InvalidRequest(loc, f"at least one {what} is required", kind="too_short")
    if count > maximum:
        raise InvalidRequest(
            loc, f"{count} {what}s exceed the maximum of {maximum} per request", status=413, kind="too_long"
        )
