"""What each latency setting of the polars feature executor buys (a benchmark, not a test; prints medians):

    .venv/bin/python benchmarks/polars_executor.py [--rounds 30] [--training-legs 100000]

Each setting is switched off by patching the one module attribute it hangs on, so the code is otherwise
the same; builds with it on and off alternate in one process on the same legs (the order flips every
round), and each row gives the median of `--rounds` builds per side. Sizes: what the service hands the
polars executor (`serving.frames.LIVE_MAX_LEGS` and up, frozen snapshot) and a training-size batch
(as-of snapshots). Both sides must give identical features, or the script stops.
See docs/decisions/polars-executor.md.
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from unittest import mock

import polars as pl
from polars.testing import assert_frame_equal

import features.build
import features.keys
import features.legs
from data_contracts.synthetic import simulate_trips
from features import AggregateTable, FeatureSpec, build_features
from features.aggregates import AggregateSource

SERVING_LEGS = (500, 1_000, 2_000, 5_000)
FIRST_DAY, DAYS, HISTORY_TRIPS = date(2026, 1, 5), 42, 60_000


def _uncached(name: str, spec: object, extra: object, build: Callable) -> tuple:
    return tuple(tuple(stage) for stage in build())


@contextmanager
def stages_rebuilt() -> Iterator[None]:
    """`features.plans.cached_stages` off: every build makes its expressions anew."""
    with (
        mock.patch.object(features.keys, "cached_stages", _uncached),
        mock.patch.object(features.build, "cached_stages", _uncached),
    ):
        yield


@contextmanager
def default_flags() -> Iterator[None]:
    """`features.legs._small_batch_flags` off: small batches collect with polars' default flags."""
    with mock.patch.object(features.legs, "_small_batch_flags", return_value=None):
        yield


# setting -> (how to switch it off, whether it acts on a batch of (path, legs)); where it does not act,
# the row is an A/A comparison: a measure of the noise
SETTINGS: dict[str, tuple[Callable, Callable[[str, int], bool]]] = {
    "cached_stages": (stages_rebuilt, lambda path, n: True),
    "eager flags": (default_flags, lambda path, n: n < features.legs.SMALL_BATCH_LEGS),
}


def _seconds(run: Callable[[], object]) -> tuple[float, float]:
    """Wall and CPU seconds of one run (CPU time is less inflated by other load on a shared machine)."""
    gc.collect()
    started, cpu_started = time.perf_counter(), time.process_time()
    run()
    return time.perf_counter() - started, time.process_time() - cpu_started


@dataclass(frozen=True)
class Comparison:
    on_ms: float  # median wall milliseconds, setting on
    off_ms: float  # median wall milliseconds, setting off
    paired: float  # median over rounds of off/on wall time (the two builds of a round run back to back)
    cpu: float  # median CPU seconds off / median CPU seconds on


def compare(off: Callable, run: Callable[[], pl.DataFrame], rounds: int) -> Comparison:
    """`run` with the setting on and off, alternating (on first in even rounds, off first in odd ones)."""
    with off():
        run()  # warm-up
        without = run()
    run()
    assert_frame_equal(run(), without, check_exact=True)
    on, off_ = [], []
    for i in range(rounds):
        for side in ("on", "off") if i % 2 == 0 else ("off", "on"):
            if side == "on":
                on.append(_seconds(run))
            else:
                with off():
                    off_.append(_seconds(run))
    median = statistics.median
    return Comparison(
        on_ms=median(w for w, _ in on) * 1e3,
        off_ms=median(w for w, _ in off_) * 1e3,
        paired=median(b[0] / a[0] for a, b in zip(on, off_, strict=True)),
        cpu=median(c for _, c in off_) / median(c for _, c in on),
    )


def cases(
    serving_legs: tuple[int, ...], training_legs: int
) -> list[tuple[str, int, pl.DataFrame, AggregateSource]]:
    """(path, legs, legs frame, snapshot source): a simulated city's history and fresh legs to build."""
    spec = FeatureSpec()
    history = simulate_trips(HISTORY_TRIPS, seed=3, start=FIRST_DAY, days=DAYS)
    table = AggregateTable.from_trips(history, spec)
    frozen = table.freeze(date(2026, 2, 16))
    legs = simulate_trips(max(training_legs, *serving_legs), seed=4, start=FIRST_DAY, days=DAYS).drop(
        "duration_s"
    )
    rows = [("serving", n, legs.head(n), frozen) for n in serving_legs]
    return [*rows, ("training", training_legs, legs.head(training_legs), table)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30, help="builds per side at serving sizes")
    parser.add_argument("--training-rounds", type=int, default=7, help="builds per side at training size")
    parser.add_argument("--settings", nargs="+", choices=list(SETTINGS), default=list(SETTINGS))
    parser.add_argument("--serving-legs", type=int, nargs="+", default=SERVING_LEGS)
    parser.add_argument("--training-legs", type=int, default=100_000)
    args = parser.parse_args()
    spec = FeatureSpec()
    print(
        f"polars {pl.__version__}, threads: {pl.thread_pool_size()}, load average: {os.getloadavg()[0]:.1f}"
    )
    print("off/on: of the median wall times; paired: median of each round's off/on; cpu: of CPU times")
    header = f"{'on ms':>9} {'off ms':>9} {'off/on':>7} {'paired':>7} {'cpu':>7}"
    print(f"{'setting':<20} {'path':<9} {'legs':>8} {header}  acts")
    for path, n, legs, source in cases(tuple(args.serving_legs), args.training_legs):
        rounds = args.rounds if path == "serving" else args.training_rounds
        for name in args.settings:
            off, acts = SETTINGS[name]
            result = compare(off, lambda legs=legs, source=source: build_features(legs, source, spec), rounds)
            acting = "yes" if acts(path, n) else "no (A/A)"
            figures = (
                f"{result.on_ms:>9.2f} {result.off_ms:>9.2f} {result.off_ms / result.on_ms:>7.3f} "
                f"{result.paired:>7.3f} {result.cpu:>7.3f}"
            )
            print(f"{name:<20} {path:<9} {n:>8,} {figures}  {acting}")
    print(f"load average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
