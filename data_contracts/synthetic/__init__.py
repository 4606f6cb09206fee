"""The embedded default data source: a simulated Nairobi delivery fleet with dated drift and ground truth.

- `generate_city` writes daily raw partitions (read them with `sources.synthetic.SyntheticCityAdapter`);
- `simulate_trips` returns N clean legs in memory as a contract frame (benchmarks);
- `build_model(seed).sample_durations / true_quantiles` simulate any leg's duration;
- `scenario_ground_truth` says what each scenario changed (see `scenarios` for the list).
"""

from data_contracts.synthetic.city import City, build_city
from data_contracts.synthetic.dirty import DEFECTS
from data_contracts.synthetic.generate import GenerationSummary, generate_city, simulate_trips
from data_contracts.synthetic.model import CityModel, build_model
from data_contracts.synthetic.scenarios import SCENARIO_NAMES, Scenario, make_scenario, scenario_ground_truth

__all__ = [
    "DEFECTS",
    "SCENARIO_NAMES",
    "City",
    "CityModel",
    "GenerationSummary",
    "Scenario",
    "build_city",
    "build_model",
    "generate_city",
    "make_scenario",
    "scenario_ground_truth",
    "simulate_trips",
]
