"""Dagster orchestration: assets, checks, resources, jobs, schedule and sensor that wire the pure code of
`data_contracts`, `features` and `models`. Start at `pipelines.definitions`."""
