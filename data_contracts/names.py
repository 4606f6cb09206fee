"""The names a user types: source adapters and synthetic scenarios. Imports nothing heavy, so the CLI's
help and its errors list them without loading polars or the simulator."""

from __future__ import annotations

# adapter name -> "module:Class" (data_contracts.sources imports a module only when it is asked for)
ADAPTERS: dict[str, str] = {
    "sendy": "data_contracts.sources.sendy:SendyAdapter",
    "citibike": "data_contracts.sources.citibike:CitiBikeAdapter",
    "nyc_taxi": "data_contracts.sources.nyc_taxi:NycTaxiSampleAdapter",
    "tlc_yellow": "data_contracts.sources.nyc_taxi:TlcYellowAdapter",
    "generic": "data_contracts.sources.generic:GenericAdapter",
    "synthetic": "data_contracts.sources.synthetic:SyntheticCityAdapter",
}
ADAPTER_NAMES: tuple[str, ...] = tuple(ADAPTERS)
SCENARIO_NAMES: tuple[str, ...] = ("stationary", "regional_slowdown", "rain_week", "demand_surge")


def spoken(names: tuple[str, ...], last: str = "or") -> str:
    """("a", "b", "c") -> "a, b or c"."""
    return f"{', '.join(names[:-1])} {last} {names[-1]}" if len(names) > 1 else "".join(names)
