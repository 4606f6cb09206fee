"""The simulated city's fixed geography: Nairobi depots, named districts, arterial roads, local clock.

Coordinates are real-looking (WGS84, rounded to ~100 m); they place the simulation, they are not a survey.
Everything here is a constant: the city is static, only trips, couriers and weather depend on a seed.
"""

from __future__ import annotations

CITY_NAME = "Nairobi"
TZ = "Africa/Nairobi"
UTC_OFFSET_HOURS = 3  # East Africa Time has no daylight saving, so local = UTC + 3 all year
LOCAL_TIMESTAMP_FORMAT = "%Y-%m-%d %H:%M:%S"

H3_RESOLUTION = 8  # ~0.74 km² hexagons: a few city blocks, the grain of the speed field
CENTRE: tuple[float, float] = (-1.2864, 36.8172)
SERVICE_RADIUS_KM = 13.0
# Nairobi National Park: no roads or customers inside; trips around it pay the slow "outside" speed.
PARK_BOX: tuple[float, float, float, float] = (
    -1.45,
    -1.335,
    36.775,
    36.96,
)  # lat_min, lat_max, lng_min, lng_max
CBD_RADIUS_KM = 1.6  # cells this close to the CBD anchor are dense, slow downtown grid

DEPOTS: dict[str, tuple[float, float]] = {
    "westlands_hub": (-1.2665, 36.8075),
    "ngara_hub": (-1.2750, 36.8290),
    "kilimani_hub": (-1.2910, 36.7850),
    "industrial_area_hub": (-1.3075, 36.8520),
    "embakasi_hub": (-1.3150, 36.8920),
    "kasarani_hub": (-1.2230, 36.8880),
    "gigiri_hub": (-1.2330, 36.8060),
    "karen_hub": (-1.3190, 36.7250),
}

# District anchor points; every service cell belongs to the district of its nearest anchor.
# The second number is relative customer density (orders per cell).
DISTRICTS: dict[str, tuple[float, float, float]] = {
    "CBD": (-1.2841, 36.8233, 1.5),
    "Westlands": (-1.2650, 36.8040, 1.4),
    "Parklands": (-1.2590, 36.8170, 1.2),
    "Kileleshwa": (-1.2780, 36.7830, 1.2),
    "Lavington": (-1.2790, 36.7670, 0.9),
    "Kilimani": (-1.2930, 36.7880, 1.4),
    "Upper Hill": (-1.2980, 36.8140, 1.0),
    "South B": (-1.3100, 36.8380, 1.1),
    "South C": (-1.3190, 36.8260, 1.0),
    "Industrial Area": (-1.3080, 36.8560, 0.5),
    "Eastleigh": (-1.2740, 36.8480, 1.6),
    "Buruburu": (-1.2880, 36.8800, 1.3),
    "Embakasi": (-1.3190, 36.8960, 1.1),
    "Roysambu": (-1.2180, 36.8730, 1.0),
    "Kasarani": (-1.2220, 36.8980, 0.9),
    "Gigiri": (-1.2290, 36.8050, 0.6),
    "Kangemi": (-1.2610, 36.7500, 1.0),
    "Langata": (-1.3450, 36.7650, 0.8),
    "Karen": (-1.3190, 36.7130, 0.5),
}

# Major roads as waypoint polylines; the H3 cells on the grid path between waypoints are arterial.
ARTERIALS: dict[str, tuple[tuple[float, float], ...]] = {
    "Thika Road": (
        (-1.2795, 36.8235),
        (-1.2660, 36.8380),
        (-1.2440, 36.8590),
        (-1.2200, 36.8850),
        (-1.2000, 36.9130),
    ),
    "Waiyaki Way": ((-1.2790, 36.8150), (-1.2650, 36.8030), (-1.2580, 36.7750), (-1.2560, 36.7450)),
    "Uhuru Highway": ((-1.2730, 36.8140), (-1.2850, 36.8190), (-1.2990, 36.8250), (-1.3070, 36.8290)),
    "Mombasa Road": ((-1.3070, 36.8290), (-1.3180, 36.8420), (-1.3290, 36.8660), (-1.3400, 36.8950)),
    "Ngong Road": ((-1.2930, 36.8120), (-1.2990, 36.7900), (-1.3010, 36.7650), (-1.3150, 36.7250)),
    "Langata Road": ((-1.3070, 36.8200), (-1.3230, 36.7950), (-1.3400, 36.7700), (-1.3500, 36.7450)),
    "Jogoo Road": ((-1.2880, 36.8350), (-1.2930, 36.8600), (-1.2950, 36.8850), (-1.2980, 36.9050)),
    "Outer Ring Road": ((-1.2270, 36.8820), (-1.2550, 36.8830), (-1.2870, 36.8880), (-1.3180, 36.8900)),
    "Juja Road": ((-1.2780, 36.8300), (-1.2700, 36.8500), (-1.2620, 36.8750)),
    "Limuru Road": ((-1.2700, 36.8180), (-1.2520, 36.8180), (-1.2300, 36.8100), (-1.2100, 36.8050)),
}
