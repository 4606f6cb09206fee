"""The IANA time zones a leg may name: what zoneinfo lists, less the entries that are not places."""

from __future__ import annotations

import zoneinfo
from functools import lru_cache

# zoneinfo lists these, but they are not places: polars refuses them and a customer never lives in them
NOT_PLACES = frozenset({"localtime", "Factory", "posixrules"})


@lru_cache(maxsize=1)
def known_zones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones()) - NOT_PLACES
