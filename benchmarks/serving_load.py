"""Load benchmark of the ETA service over real HTTP on loopback (a benchmark, not a test).

    .venv/bin/python benchmarks/serving_load.py                 # start `eta serve` on the champion
    .venv/bin/python benchmarks/serving_load.py --synthetic     # train a small champion in a temp ETA_HOME
    .venv/bin/python benchmarks/serving_load.py --url http://127.0.0.1:3000    # an already running service
    add --quick for shorter runs, --compare-batching to rerun the concurrent case with batching off

Reports p50/p95/p99 latency, throughput and errors for: single-leg /eta sequentially and with 16 and 50
concurrent clients, 1,000-leg batches, /delivery_window, /route_eta with 50 stops; the time from process
start to /readyz (from the registry with `eta serve` and with `bentoml serve` itself, and from a built
Bento that carries the model); and, in process, where a request's time goes (parse, frame, features,
boosters, answer).
Every scenario is bounded in requests and seconds. Targets (2 cores): single leg p50 <= 4 ms and p99 <= 10 ms
sequentially; >= 500 req/s with 16 clients; 1,000-leg batch <= 30 ms; zero errors with 50 clients for 60 s;
ready within 20 s. The load generator shares the machine's cores with the server.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from urllib.parse import urlparse

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
NAIROBI = "Africa/Nairobi"
DEPARTURE = datetime.fromisoformat("2026-02-17T09:30:00+03:00")
LOOPBACK = {"127.0.0.1", "localhost", "::1"}


@dataclass
class Result:
    name: str
    latencies_s: list[float] = field(default_factory=list)
    errors: int = 0
    error_kinds: dict[str, int] = field(default_factory=dict)
    wall_s: float = 0.0
    note: str = ""

    def row(self) -> dict[str, object]:
        ms = np.array(self.latencies_s) * 1000
        done = len(self.latencies_s)
        return {
            "scenario": self.name,
            "requests": done,
            "errors": self.errors,
            "error_kinds": self.error_kinds,
            "p50_ms": round(float(np.percentile(ms, 50)), 2) if done else None,
            "p95_ms": round(float(np.percentile(ms, 95)), 2) if done else None,
            "p99_ms": round(float(np.percentile(ms, 99)), 2) if done else None,
            "throughput_rps": round(done / self.wall_s, 1) if self.wall_s else None,
            "note": self.note,
        }


# ---- request bodies -------------------------------------------------------------------------------------


def city_legs(n: int, seed: int = 3) -> list[dict[str, object]]:
    """Realistic legs of the synthetic city as /eta JSON (departing on one weekday morning)."""
    from data_contracts.synthetic import simulate_trips

    trips = simulate_trips(n, seed=seed, start=date(2026, 1, 5), days=7)
    rng = np.random.default_rng(seed)
    minutes = rng.integers(0, 10 * 60, n)
    rows = trips.select(
        "origin_lat", "origin_lng", "dest_lat", "dest_lng", "courier_id", "vehicle_type", "temperature_c"
    ).to_dicts()
    return [
        {
            **row,
            "tz": NAIROBI,
            "departure_time": (DEPARTURE + timedelta(minutes=int(m))).isoformat(),
            "precipitation_mm": 0.0,
        }
        for row, m in zip(rows, minutes, strict=True)
    ]


def risk_body(legs: list[dict[str, object]], n: int) -> dict[str, object]:
    """n active deliveries for /exception_risk: each departed at its leg's time, promised 40 minutes later,
    asked about 10 hours after the first departure (so some are late, some not yet departed)."""
    now = DEPARTURE + timedelta(hours=5)
    return {
        "now": now.isoformat(),
        "deliveries": [
            {
                "leg": leg,
                "promised_by": (
                    datetime.fromisoformat(str(leg["departure_time"])) + timedelta(minutes=40)
                ).isoformat(),
            }
            for leg in legs[:n]
        ],
    }


def route_body(legs: list[dict[str, object]], n_stops: int) -> dict[str, object]:
    """A route as a routing engine sends one: the stops in nearest-next order from the depot (in the order
    drawn, hops between random drops are longer than any leg the model knows, and the service refuses them)."""
    here = (float(legs[0]["origin_lat"]), float(legs[0]["origin_lng"]))
    left = [(float(leg["dest_lat"]), float(leg["dest_lng"])) for leg in legs[:n_stops]]
    stops = []
    while left:
        here = min(left, key=lambda p: (p[0] - here[0]) ** 2 + (p[1] - here[1]) ** 2)
        left.remove(here)
        stops.append({"lat": here[0], "lng": here[1], "service_time_s": 90})
    return {
        "origin": {"lat": legs[0]["origin_lat"], "lng": legs[0]["origin_lng"]},
        "departure_time": DEPARTURE.isoformat(),
        "tz": NAIROBI,
        "stops": stops,
        "context": {"vehicle_type": "motorbike", "temperature_c": 22.0, "precipitation_mm": 0.0},
    }


# ---- load generation -----------------------------------------------------------------------------------


def encode(host: str, path: str, body: dict | None, headers: dict[str, str]) -> bytes:
    """One HTTP/1.1 keep-alive request, serialised once (the load generator must stay cheap: it shares
    the two cores with the server)."""
    extra = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    if body is None:
        return f"GET {path} HTTP/1.1\r\nhost: {host}\r\n{extra}\r\n".encode()
    payload = json.dumps(body).encode()
    head = f"POST {path} HTTP/1.1\r\nhost: {host}\r\ncontent-type: application/json\r\n"
    return f"{head}content-length: {len(payload)}\r\n{extra}\r\n".encode() + payload


async def read_response(reader: asyncio.StreamReader) -> int:
    """Status code of the next response, its body read and discarded (Content-Length or chunked)."""
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    lines = head.decode("latin-1").lower().split("\r\n")
    fields = dict(line.split(": ", 1) for line in lines[1:] if ": " in line)
    if "content-length" in fields:
        await reader.readexactly(int(fields["content-length"]))
    elif fields.get("transfer-encoding") == "chunked":
        while size := int((await reader.readuntil(b"\r\n")).strip(), 16):
            await reader.readexactly(size + 2)
        await reader.readuntil(b"\r\n")
    return status


async def run_load(
    url: str,
    name: str,
    bodies: Callable[[int], tuple[str, dict | None]],
    clients: int,
    max_requests: int,
    max_seconds: float,
    headers: dict[str, str],
) -> Result:
    """`clients` concurrent connections, each sending its next request when the last one is answered."""
    target = urlparse(url)
    host, port = target.hostname or "127.0.0.1", target.port or 80
    requests = [encode(host, *bodies(i), headers) for i in range(min(max_requests, 2000))]
    result = Result(name)
    counter = iter(range(max_requests))
    started = time.perf_counter()
    deadline = started + max_seconds

    async def loop() -> None:
        reader, writer = await asyncio.open_connection(host, port)
        try:
            for i in counter:
                if time.perf_counter() > deadline:
                    return
                sent = time.perf_counter()
                try:
                    writer.write(requests[i % len(requests)])
                    await writer.drain()
                    status = await read_response(reader)
                    kind = None if status == 200 else f"HTTP {status}"
                except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
                    kind = type(exc).__name__
                    writer.close()
                    reader, writer = await asyncio.open_connection(host, port)
                if kind is None:
                    result.latencies_s.append(time.perf_counter() - sent)
                else:
                    result.errors += 1
                    result.error_kinds[kind] = result.error_kinds.get(kind, 0) + 1
        finally:
            writer.close()

    await asyncio.gather(*(loop() for _ in range(clients)))
    result.wall_s = time.perf_counter() - started
    return result


# ---- the server ----------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def served(env: dict[str, str], log: Path, bento: str | None = None, direct: bool = False):
    """The service on a free loopback port: `eta serve` (registry publisher first, then `bentoml serve`), or
    `bentoml serve` itself (`direct`, or a built Bento by tag); yields (url, seconds to ready); always
    stopped."""
    port = free_port()
    if bento or direct:
        command = [sys.executable, "-m", "bentoml", "serve", bento or "serving.service:EtaService"]
        command += [] if bento else ["--working-dir", str(ROOT)]
    else:
        command = [sys.executable, "-m", "eta_cli.main", "serve"]
    command += ["--host", "127.0.0.1", "--port", str(port)]
    started = time.monotonic()
    with log.open("wb") as out:
        process = subprocess.Popen(
            command, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            url = f"http://127.0.0.1:{port}"
            while True:
                if process.poll() is not None:
                    raise RuntimeError(f"the server exited:\n{log.read_text()[-3000:]}")
                if time.monotonic() - started > 300:
                    raise TimeoutError("not ready after 300 s")
                try:
                    if httpx.get(f"{url}/readyz", timeout=5).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                time.sleep(0.2)
            yield url, time.monotonic() - started
        finally:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
                try:
                    process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, signal.SIGKILL)


def synthetic_champion(home: Path) -> None:
    """Train and register a small champion under `home` (ETA_HOME) for a self-contained benchmark."""
    os.environ["ETA_HOME"] = str(home)
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    from data_contracts.synthetic import simulate_trips
    from models.quantile import BoostingParams
    from models.registry import log_and_register
    from models.tracking import CHAMPION, set_alias
    from models.train import TrainConfig, train_eta_model

    trips = simulate_trips(40_000, seed=3, start=date(2026, 1, 5), days=42)
    config = TrainConfig(params=BoostingParams(num_threads=2))
    run = log_and_register(train_eta_model(trips, config), config, run_name="serving-benchmark")
    set_alias(CHAMPION, run.version)


# ---- where the time goes (in process) -------------------------------------------------------------------


def stage_breakdown(legs: list[dict[str, object]]) -> list[dict[str, object]]:
    """Median milliseconds of each stage of /eta, in process, for 1 and 1,000 legs."""
    from pydantic import TypeAdapter

    from models.pyfunc import load_eta_model
    from models.tracking import configure
    from serving.config import ServingConfig
    from serving.frames import legs_frame, model_input
    from serving.intervals import legs_json
    from serving.model_source import InMemorySource, ModelHolder
    from serving.schemas import EtaRequest

    configure()
    champion, _ = load_eta_model("models:/eta-model@champion")
    holder = ModelHolder(InMemorySource({"1": champion}, "1"), tree_threads=ServingConfig().tree_threads)
    holder.refresh()
    model = holder.current.model
    rows = []
    for n in (1, 1000):
        raw = json.dumps({"legs": legs[:n]}).encode()
        request = TypeAdapter(EtaRequest).validate_json(raw)
        departures = [leg.departure_time for leg in request.legs]
        frame = legs_frame(request.legs, departures)
        given = model_input(request.legs, departures)  # live legs below LIVE_MAX_LEGS, a frame above
        features = model.features(given)
        q = model.predict_from_features(features)
        starts = frame["start_ts"].dt.epoch("us").to_numpy() / 1e6
        stages = {
            "parse + validate JSON": lambda raw=raw: TypeAdapter(EtaRequest).validate_json(raw),
            "legs -> model input": lambda r=request, d=departures: model_input(r.legs, d),
            "features, as served (live below 500 legs, polars above)": lambda g=given: model.features(g),
            "features, polars executor": lambda f=frame: model.features(f),
            "boosters + conformal": lambda f=features: model.predict_from_features(f),
            "answer, written as JSON (intervals, arrival clocks)": lambda q=q, s=starts, n=n: legs_json(
                q, model.quantiles, [0.8, 0.9], s, [NAIROBI] * n, [None] * n
            ),
        }
        for stage, run in stages.items():
            run()
            times = []
            for _ in range(30 if n == 1 else 10):
                t0 = time.perf_counter()
                run()
                times.append(time.perf_counter() - t0)
            rows.append({"legs": n, "stage": stage, "median_ms": round(statistics.median(times) * 1000, 2)})
    holder.stop()
    return rows


# ---- main ----------------------------------------------------------------------------------------------


def scenarios(legs: list[dict[str, object]], quick: bool) -> list[tuple[str, Callable, int, int, float]]:
    """(name, body maker, clients, max requests, max seconds)"""
    scale = 0.25 if quick else 1.0
    batch = {"legs": legs[:1000]}
    route = route_body(legs, 50)
    risk = risk_body(legs, 1000)

    def single(i: int) -> tuple[str, dict]:
        return "/eta", {"legs": [legs[i % len(legs)]]}

    return [
        (
            "GET /livez, sequential (HTTP + BentoML floor)",
            lambda i: ("/livez", None),
            1,
            int(1000 * scale),
            30,
        ),
        ("GET /livez, 16 clients", lambda i: ("/livez", None), 16, 20_000, 20 * scale),
        ("single leg /eta, sequential", single, 1, int(1000 * scale), 60 * scale),
        ("single leg /eta, 16 clients", single, 16, 20_000, 20 * scale),
        ("single leg /eta, 50 clients", single, 50, 100_000, 60 * scale),
        ("1,000-leg /eta batch, sequential", lambda i: ("/eta", batch), 1, int(60 * scale), 60 * scale),
        (
            "/delivery_window, sequential",
            lambda i: ("/delivery_window", {"leg": legs[i % len(legs)]}),
            1,
            int(500 * scale),
            60 * scale,
        ),
        ("/route_eta 50 stops, sequential", lambda i: ("/route_eta", route), 1, int(60 * scale), 60 * scale),
        (
            "1,000-delivery /exception_risk, sequential",
            lambda i: ("/exception_risk", risk),
            1,
            int(60 * scale),
            60 * scale,
        ),
    ]


def bento_ready_seconds(env: dict[str, str], workdir: Path) -> float:
    """Build the deployable Bento around the champion and time `bentoml serve <tag>` to /readyz, with no
    registry reachable (the model comes from the Bento)."""
    from serving.packaging import build_bento

    tag = build_bento().tag
    offline = {**env, "ETA_HOME": str(workdir / "empty_home"), "MLFLOW_TRACKING_URI": "http://127.0.0.1:9"}
    with served(offline, workdir / "server_bento.log", bento=tag) as (url, ready_s):
        response = httpx.post(f"{url}/eta", json={"legs": city_legs(1)}, timeout=60)
        if response.status_code != 200 or response.json()["model"]["source"] != "bento":
            raise RuntimeError(f"the Bento did not answer from its own model: {response.text[:300]}")
    return round(ready_s, 1)


def direct_ready_seconds(env: dict[str, str], workdir: Path) -> float:
    """Time `bentoml serve serving.service:EtaService` itself to /readyz: no publisher waits for the worker,
    which starts its own when it builds the service."""
    with served(env, workdir / "server_direct.log", direct=True) as (_, ready_s):
        return round(ready_s, 1)


def _note(row: dict) -> str:
    """The row's note, and what its errors were (a row of errors must say why)."""
    kinds = ", ".join(f"{n} x {kind}" for kind, n in (row.get("error_kinds") or {}).items())
    return "; ".join(part for part in (row["note"], kinds and f"errors: {kinds}") if part)


def markdown(report: dict) -> str:
    lines = [
        f"{report['cores']} cores, load average {report['load_average_at_start']} at start (shared machine); "
        f"ready {report.get('seconds_to_ready', '?')} s after `eta serve` started"
        + (
            f" (`bentoml serve` itself: {report['seconds_to_ready_direct']} s; the built Bento, model carried "
            f"and no registry: {report['seconds_to_ready_bento']} s)"
            if report.get("seconds_to_ready_bento")
            else ""
        ),
        "",
        "| scenario | requests | errors | p50 ms | p95 ms | p99 ms | req/s | note |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in report["results"]:
        lines.append(
            f"| {r['scenario']} | {r['requests']} | {r['errors']} | {r['p50_ms']} | {r['p95_ms']} | {r['p99_ms']} "
            f"| {r['throughput_rps']} | {_note(r)} |"
        )
    if report.get("stages"):
        lines += ["", "| in process, /eta stage | 1 leg, ms | 1,000 legs, ms |", "|---|---|---|"]
        by_stage: dict[str, dict[int, float]] = {}
        for row in report["stages"]:
            by_stage.setdefault(row["stage"], {})[row["legs"]] = row["median_ms"]
        lines += [f"| {stage} | {ms.get(1)} | {ms.get(1000)} |" for stage, ms in by_stage.items()]
    return "\n".join(lines)


def run(args: argparse.Namespace, workdir: Path) -> dict:
    headers = {"x-api-key": os.environ["ETA_SERVE_API_KEY"]} if os.environ.get("ETA_SERVE_API_KEY") else {}
    if args.synthetic:
        print("training a small champion under", workdir / "eta_home", flush=True)
        synthetic_champion(workdir / "eta_home")
    os.environ.setdefault("BENTOML_HOME", str(workdir / "bentoml"))
    legs = city_legs(2000)
    report: dict = {
        "cores": os.cpu_count(),
        "load_average_at_start": round(os.getloadavg()[0], 2),
        "results": [],
    }
    env = {**os.environ, "ETA_SERVE_POLL_SECONDS": "0"}

    def run_all(url: str, selected: list) -> None:
        httpx.post(f"{url}/eta", json={"legs": legs[:1000]}, headers=headers, timeout=60)  # warm up
        for name, bodies, clients, max_requests, max_seconds in selected:
            before = httpx.post(f"{url}/admin/status", json={}, headers=headers).json()
            result = asyncio.run(run_load(url, name, bodies, clients, max_requests, max_seconds, headers))
            after = httpx.post(f"{url}/admin/status", json={}, headers=headers).json()
            calls = after["model_calls"] - before["model_calls"]
            if calls:
                per_call = (after["requests"] - before["requests"]) / calls
                result.note = f"{per_call:.1f} predictions per model call"
            report["results"].append(result.row())
            print(json.dumps(result.row()), flush=True)

    if args.url:
        run_all(args.url, scenarios(legs, args.quick))
    else:
        with served(env, workdir / "server.log") as (url, ready_s):
            report["seconds_to_ready"] = round(ready_s, 1)
            print(f"ready after {ready_s:.1f} s", flush=True)
            run_all(url, scenarios(legs, args.quick))
        report["seconds_to_ready_direct"] = direct_ready_seconds(env, workdir)
        print(f"`bentoml serve` itself was ready after {report['seconds_to_ready_direct']} s", flush=True)
        report["seconds_to_ready_bento"] = bento_ready_seconds(env, workdir)
        print(f"the built Bento was ready after {report['seconds_to_ready_bento']} s", flush=True)
        if args.compare_batching:
            with served({**env, "ETA_SERVE_BATCHING": "false"}, workdir / "server_nobatch.log") as (url, _):
                concurrent = [s for s in scenarios(legs, args.quick) if s[0] == "single leg /eta, 16 clients"]
                run_all(url, [(f"{concurrent[0][0]}, batching OFF", *concurrent[0][1:])])
    if not args.no_breakdown:
        report["stages"] = stage_breakdown(legs)
    return report


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--url", help="benchmark a running service (loopback only)")
    parser.add_argument("--synthetic", action="store_true", help="train a small champion in a temp ETA_HOME")
    parser.add_argument("--quick", action="store_true", help="a quarter of the requests and seconds")
    parser.add_argument("--compare-batching", action="store_true", help="rerun 16 clients with batching off")
    parser.add_argument("--no-breakdown", action="store_true", help="skip the in-process stage timings")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    if args.url and urlparse(args.url).hostname not in LOOPBACK:
        parser.error("--url must be a loopback address: this benchmark never leaves the machine")
    with tempfile.TemporaryDirectory(prefix="eta-serving-bench-") as workdir:
        report = run(args, Path(workdir))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    command = (
        "make benchmark-serving  (= .venv/bin/python benchmarks/serving_load.py --synthetic "
        + " ".join(
            flag
            for flag, on in (
                ("--quick", args.quick),
                ("--compare-batching", args.compare_batching),
            )
            if on
        )
        + ")"
    )
    text = f"Measured {datetime.now(UTC):%Y-%m-%d} with `{command.replace(' )', ')')}`; " + markdown(report)
    out = Path(__file__).resolve().parent.parent / "results" / "serving_performance.md"
    out.parent.mkdir(exist_ok=True)
    out.write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
