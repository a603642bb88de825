"""Predict latency and throughput of the running API, with micro-batching on and off.

Starts the real server (``advguard serve``) on loopback in a fresh data directory with one
guard registered, then drives ``POST /api/v1/predict`` with N concurrent clients (one
keep-alive connection each, one 128×128 grayscale PNG per request) for a fixed time per
level after a warm-up. For each level: p50/p95/p99 latency, images per second and the CPU
used by the client and by the server. Batching on (the default: gather up to
``ADVGUARD_PREDICT_MAX_BATCH`` images or ``ADVGUARD_PREDICT_MAX_WAIT_MS``) is compared with
batching off (one forward per request). Targets on 2 cores: p50 ≤ 10 ms for one client,
and at 32 clients ≥ 4× the throughput of batching off.

The guard comes from ``--guard`` (a folder written by ``Guard.save``) or, without it, is
trained here on the bundled data (3 classifier epochs, a small FGSM/PGD set, 20 detector
epochs; a few minutes on 2 cores): predict runs the same passes whatever the weights, so
its speed does not depend on how well the guard was trained. A quick guard has 2 attack
names instead of 5, which changes only the detector head's last layer.

Beside it, in the same run, the guard as it was before it learned what clean scans look
like (``--baseline``, a git revision; its code is taken from the repository's history and
served the same way): one client, batching on, both servers up at once and measured in
alternating windows, so that the two one-image latencies are compared on one machine at
one time, with no advantage to whichever runs first. That version cannot load guards
saved by this one, so it serves its own (``--baseline-guard``, or a quick one built by its
own code).

Every request is timed by the client, so the client's own CPU (shown per level) competes
with the server for the same cores; the in-process ``Guard.predict`` time ("compute
floor") shows how much of the latency is HTTP, decoding and queueing.

Usage: python bench/predict.py [--guard DIR] [--baseline REV|none] [--baseline-guard DIR]
       [--duration 5] [--clients 1,4,16,32] [--rounds 8] [--threads N]
"""

from __future__ import annotations

import argparse
import asyncio
import io
import itertools
import math
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import AsyncExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

import httpx
import torch
from PIL import Image

from advguard.config import Settings
from advguard.data import decode_upload, load_dataset, real_mri_path
from advguard.guard import CLASSIFIER_DIR, TORCHSCRIPT_FILE, Guard
from advguard.runtime import configure_threads, reexec_with_jemalloc, tune_glibc_malloc
from advguard.storage import DetectorRecord, ModelRecord, Storage, new_id

REPOSITORY_ROOT = Path(__file__).resolve().parents[1]
IMAGE_SIZE = 128
PREDICT_PATH = "/api/v1/predict"
HEALTH_PATH = "/api/v1/health"
BOUNDARY = "advguard-bench-predict"
HEADERS = {"content-type": f"multipart/form-data; boundary={BOUNDARY}"}
P50_TARGET_MS = 10.0
SPEEDUP_TARGET = 4.0
BASELINE_REVISION = "3b6e755"
"""The last commit before the guard's clean-only part (issue 14): the detector that the
one-image predict must not be slower than."""


# --- the guard and the data directory ---------------------------------------------------


def build_quick_guard(directory: Path) -> Path:
    """Train a small guard on the bundled data at 128×128 and save it to ``directory``.

    Good enough to time predict (the same passes run whatever the weights), not to use.
    """
    from advguard.detection import (
        BuildConfig,
        DetectorConfig,
        build_adversarial_set,
        default_attack_specs,
        train_detector,
    )
    from advguard.models import TrainConfig, fit_classifier

    start = time.perf_counter()
    print("no --guard: building a quick one on the bundled data (a few minutes on 2 cores)")
    data = load_dataset("bundled", image_size=IMAGE_SIZE)
    model, spec, _ = fit_classifier(
        data.splits["train"], TrainConfig(epochs=3), show_progress=False
    )
    print(f"  classifier: {time.perf_counter() - start:.0f} s")
    adversarial = build_adversarial_set(
        model,
        data.splits,
        directory / "set",
        BuildConfig(specs=default_attack_specs(["fgsm", "pgd"], [8 / 255]), fraction=0.1),
        show_progress=False,
    )
    size = len(adversarial.images)
    print(f"  adversarial set ({size} images): {time.perf_counter() - start:.0f} s")
    detector, _ = train_detector(model, adversarial, DetectorConfig(epochs=20), show_progress=False)
    guard_dir = Guard(model, spec, detector).save(directory / "guard")
    print(f"  detector: {time.perf_counter() - start:.0f} s in all")
    return guard_dir


def register_guard(data_dir: Path, guard_dir: Path, guard: Guard) -> str:
    """Copy the guard into ``data_dir`` and record it as a model and a detector; return the
    detector's id."""
    storage = Storage(data_dir, database_url(data_dir))
    detector_id = new_id()
    folder = storage.folder("detectors", detector_id)
    shutil.copytree(guard_dir, folder)
    script = folder / TORCHSCRIPT_FILE
    with storage.db.session() as session:
        model = ModelRecord(
            name="bench classifier",
            origin="torchscript" if script.exists() else "trained",
            path=str(script if script.exists() else folder / CLASSIFIER_DIR),
            class_names=list(guard.spec.class_names),
            image_size=guard.spec.image_size,
            channels=guard.spec.in_channels,
        )
        session.add(model)
        session.flush()
        session.add(
            DetectorRecord(
                id=detector_id,
                name="bench detector",
                path=str(folder),
                model_id=model.id,
                set_job_id="bench",
                attack_names=list(guard.detector.attack_names),
                threshold=guard.threshold,
            )
        )
    storage.db.engine.dispose()
    return detector_id


def export_revision(revision: str, directory: Path) -> Path:
    """The ``advguard`` package as it was at git ``revision``, extracted under
    ``directory``; returns the folder to put on ``PYTHONPATH``."""
    archive = subprocess.run(
        ["git", "-C", str(REPOSITORY_ROOT), "archive", revision, "backend/advguard"],
        check=True,
        capture_output=True,
    ).stdout
    directory.mkdir(parents=True)
    subprocess.run(["tar", "-x", "-C", str(directory)], input=archive, check=True)
    return directory / "backend"


def prepare_data_dir(data_dir: Path, guard_dir: Path | None) -> str:
    """Register ``guard_dir`` (or a quick guard built here) in ``data_dir``; return the
    detector's id. Run under another version's code, this is how its guard gets served."""
    guard_dir = guard_dir or build_quick_guard(data_dir.parent / "built")
    return register_guard(data_dir, guard_dir, Guard.load(guard_dir, serving=True))


def prepare_baseline(revision: str, guard_dir: Path | None, work: Path) -> tuple[Path, str, Path]:
    """The baseline's code, data directory and detector id, prepared by its own code."""
    source = export_revision(revision, work / "code")
    data_dir = work / "data"
    command = [sys.executable, __file__, "--prepare", str(data_dir)]
    if guard_dir is not None:
        command += ["--guard", str(guard_dir)]
    done = subprocess.run(
        command,
        env={**os.environ, "PYTHONPATH": str(source)},
        check=True,
        capture_output=True,
        text=True,
    )
    return source, data_dir, done.stdout.strip().splitlines()[-1]


def database_url(data_dir: Path) -> str:
    return f"sqlite:///{(data_dir / 'advguard.db').resolve()}"


# --- request bodies -----------------------------------------------------------------------


def png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def sample_pngs(count: int = 16) -> tuple[list[bytes], str]:
    """``count`` 128×128 grayscale PNGs: real MRI test images when the shared set is
    there, else images of the bundled set. Returns them and where they came from."""
    test = real_mri_path() / "test"
    files = sorted(test.glob("*/*.png")) if test.is_dir() else []
    if files:
        step = max(1, len(files) // count)
        pngs = []
        for file in files[::step][:count]:
            data = file.read_bytes()
            with Image.open(io.BytesIO(data)) as image:
                if image.mode != "L" or image.size != (IMAGE_SIZE, IMAGE_SIZE):
                    data = png_bytes(image.convert("L").resize((IMAGE_SIZE, IMAGE_SIZE)))
            pngs.append(data)
        return pngs, f"real MRI test images ({test})"
    images = load_dataset("bundled", image_size=IMAGE_SIZE).splits["test"].images[:count]
    pixels = (images.clamp(0, 1) * 255).round().to(torch.uint8)[:, 0].numpy()
    return [png_bytes(Image.fromarray(p, mode="L")) for p in pixels], "bundled synthetic images"


def multipart_body(png: bytes, filename: str) -> bytes:
    """A ``multipart/form-data`` body with one file in the ``files`` field, encoded once
    so that the client spends its CPU on HTTP, not on re-encoding the same upload."""
    head = (
        f"--{BOUNDARY}\r\n"
        f'Content-Disposition: form-data; name="files"; filename="{filename}"\r\n'
        "Content-Type: image/png\r\n\r\n"
    )
    return head.encode() + png + f"\r\n--{BOUNDARY}--\r\n".encode()


# --- the in-process compute floor -----------------------------------------------------------


def median_ms(
    run: Callable[[], object], warmup: int = 3, budget_s: float = 2.0, max_repeats: int = 50
) -> float:
    """Median wall time of ``run`` in ms, after ``warmup`` untimed calls (the first few
    are slow: allocator and oneDNN caches fill per shape); repeats until ``budget_s`` is
    spent (at least 3, at most ``max_repeats`` times)."""
    for _ in range(warmup):
        run()
    times: list[float] = []
    spent = 0.0
    while len(times) < 3 or (spent < budget_s and len(times) < max_repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
        spent += times[-1]
    return statistics.median(times) * 1000


@dataclass
class Floor:
    """``Guard.predict`` in this process: no HTTP, no decoding, no queueing."""

    one_ms: float
    batch: int
    batch_ms: float


def compute_floor(guard: Guard, png: bytes, batch: int) -> Floor:
    spec = guard.spec
    image = decode_upload(png, channels=spec.in_channels, size=spec.image_size)[None]
    images = image.expand(batch, -1, -1, -1).contiguous()
    one = median_ms(lambda: guard.predict(image))
    return Floor(one, batch, median_ms(lambda: guard.predict(images), warmup=2, max_repeats=5))


# --- the server -------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def process_cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of a process, all threads (Linux ``/proc``), else None."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextmanager
def running_server(
    data_dir: Path, port: int, batching: bool, extra_env: dict[str, str]
) -> Iterator[subprocess.Popen[bytes]]:
    """``advguard serve`` on 127.0.0.1:``port`` until the block ends (stopped on errors
    too); its log goes to ``data_dir/server-<mode>.log``."""
    # Settings of the caller's own service (API key, database) stay out of it.
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("ADVGUARD_") or k == "ADVGUARD_ALLOCATOR"
    }
    env.update(
        ADVGUARD_DATA_DIR=str(data_dir),
        ADVGUARD_DATABASE_URL=database_url(data_dir),
        ADVGUARD_PREDICT_BATCHING="true" if batching else "false",
        **extra_env,
    )
    log_path = data_dir / f"server-{'batching' if batching else 'no-batching'}.log"
    command = [sys.executable, "-m", "advguard.cli", "serve", "--host", "127.0.0.1"]
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [*command, "--port", str(port)],
            env=env,
            cwd=REPOSITORY_ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_healthy(process, f"http://127.0.0.1:{port}")
        yield process
    except Exception:
        print(f"server log ({log_path}), last lines:", file=sys.stderr)
        print("\n".join(log_path.read_text(errors="replace").splitlines()[-30:]), file=sys.stderr)
        raise
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def wait_healthy(process: subprocess.Popen[bytes], base_url: str) -> None:
    """Return once ``GET /health`` answers 200 (``degraded`` without Redis is fine)."""
    deadline = time.monotonic() + 120
    with httpx.Client(base_url=base_url, trust_env=False, timeout=5) as client:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"the server exited with status {process.returncode}")
            try:
                if client.get(HEALTH_PATH).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
    raise RuntimeError(f"the server did not answer {HEALTH_PATH} within 120 s")


# --- the load generator ---------------------------------------------------------------------


@dataclass
class LevelRun:
    """Shared state of the clients of one concurrency level."""

    clients: int
    stop: bool = False
    window_start: float = math.inf
    answered: set[int] = field(default_factory=set)
    in_window: int = 0
    records: list[tuple[float, float, bool]] = field(default_factory=list)
    """(end time, latency s, ok) of every request."""
    first_error: str | None = None

    def record(self, client: int, start: float, end: float, ok: bool) -> None:
        self.records.append((end, end - start, ok))
        if ok:
            self.answered.add(client)
            if end >= self.window_start:
                self.in_window += 1

    def error(self, message: str) -> None:
        self.first_error = self.first_error or message


async def client_loop(
    client: httpx.AsyncClient, index: int, bodies: list[bytes], path: str, run: LevelRun
) -> None:
    """Send one image per request, back to back, until told to stop."""
    k = index
    while not run.stop:
        body = bodies[k % len(bodies)]
        k += 1
        start = time.perf_counter()
        try:
            response = await client.post(path, content=body, headers=HEADERS)
            ok = response.status_code == 200
            if not ok:
                run.error(f"HTTP {response.status_code}: {response.text[:300]}")
        except httpx.HTTPError as error:
            ok = False
            run.error(f"{type(error).__name__}: {error}")
        run.record(index, start, time.perf_counter(), ok)
        if not ok:
            await asyncio.sleep(0.05)


@dataclass
class LevelResult:
    batching: bool
    clients: int
    window_s: float
    latencies_ms: list[float]
    """Sorted latencies of the requests that completed in the window."""
    errors: int
    client_cpu: float
    """CPU of this process (the clients) over the window, in cores."""
    server_cpu: float | None

    @property
    def throughput(self) -> float:
        return len(self.latencies_ms) / self.window_s

    def percentile(self, q: float) -> float:
        return percentile(self.latencies_ms, q)


def percentile(values: list[float], q: float) -> float:
    """Linear-interpolated quantile ``q`` of sorted ``values`` (NaN when empty)."""
    if not values:
        return math.nan
    position = (len(values) - 1) * q
    low = math.floor(position)
    high = min(low + 1, len(values) - 1)
    return values[low] + (values[high] - values[low]) * (position - low)


async def run_level(
    base_url: str,
    path: str,
    bodies: list[bytes],
    clients: int,
    batching: bool,
    server_pid: int,
    warmup_s: float,
    duration_s: float,
    max_s: float,
) -> LevelResult:
    """Warm up until ``warmup_s`` passed and every client has an answer, then measure for
    ``duration_s`` (longer, up to ``max_s``, until at least one answer per client came
    in the window), then let the requests in flight finish uncounted."""
    run = LevelRun(clients)
    async with AsyncExitStack() as stack:
        sessions = [
            await stack.enter_async_context(
                httpx.AsyncClient(
                    base_url=base_url,
                    limits=httpx.Limits(max_connections=1, max_keepalive_connections=1),
                    timeout=httpx.Timeout(600.0),
                    trust_env=False,
                )
            )
            for _ in range(clients)
        ]
        tasks = [
            asyncio.create_task(client_loop(session, i, bodies, path, run))
            for i, session in enumerate(sessions)
        ]
        clock = time.perf_counter
        begin = clock()
        while clock() - begin < max_s and (
            clock() - begin < warmup_s or len(run.answered) < clients
        ):
            await asyncio.sleep(0.02)
        start, cpu_start = clock(), time.process_time()
        server_start = process_cpu_seconds(server_pid)
        run.window_start = start
        while clock() - start < max_s and (clock() - start < duration_s or run.in_window < clients):
            await asyncio.sleep(0.02)
        end, cpu_end = clock(), time.process_time()
        server_end = process_cpu_seconds(server_pid)
        run.stop = True
        await asyncio.gather(*tasks)
    window = [(done, latency, ok) for done, latency, ok in run.records if start <= done <= end]
    if run.first_error:
        failed = sum(not ok for *_, ok in run.records)
        print(f"  {failed} failed requests at {clients} clients; first: {run.first_error}")
    if not any(ok for *_, ok in run.records):
        raise RuntimeError(f"no request succeeded at {clients} clients: {run.first_error}")
    server_cpu = None
    if server_start is not None and server_end is not None:
        server_cpu = (server_end - server_start) / (end - start)
    return LevelResult(
        batching=batching,
        clients=clients,
        window_s=end - start,
        latencies_ms=sorted(latency * 1000 for _, latency, ok in window if ok),
        errors=sum(not ok for *_, ok in window),
        client_cpu=(cpu_end - cpu_start) / (end - start),
        server_cpu=server_cpu,
    )


async def warm_server(base_url: str, path: str, bodies: list[bytes], seconds: float) -> str:
    """Sequential requests for ``seconds`` (at least 5): the first loads the guard, the next
    few are slow while caches fill. Returns the first verdict in words."""
    async with httpx.AsyncClient(base_url=base_url, timeout=600.0, trust_env=False) as client:
        start = time.perf_counter()
        for k in itertools.count():
            response = await client.post(path, content=bodies[k % len(bodies)], headers=HEADERS)
            if response.status_code != 200:
                raise RuntimeError(f"predict answered {response.status_code}: {response.text}")
            if k == 0:
                verdict = response.json()["verdicts"][0]
            if k >= 4 and time.perf_counter() - start >= seconds:
                break
    if verdict["is_adversarial"]:
        return f"rejected as {verdict['attack']} (score {verdict['score']:.3f})"
    return f"accepted, label {verdict['label']} (score {verdict['score']:.3f})"


# --- output ------------------------------------------------------------------------------------


def print_table(header: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    print("| " + " | ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)) + " |")
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for row in rows:
        print("| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |")


def ms(value: float) -> str:
    return "—" if math.isnan(value) else f"{value:.1f}"


def ratio(numerator: float, denominator: float) -> str:
    return f"{numerator / denominator:.2f}×" if denominator > 0 else "—"


def level_table(results: list[LevelResult], floor: Floor) -> None:
    header = ["clients", "requests", "p50 ms", "p95 ms", "p99 ms", "img/s"]
    header += ["p50 ÷ floor", "client CPU", "server CPU"]
    rows = []
    for r in results:
        server = "—" if r.server_cpu is None else f"{r.server_cpu:.2f}"
        rows.append(
            [
                str(r.clients),
                f"{len(r.latencies_ms)} in {r.window_s:.1f} s"
                + (f", {r.errors} failed" if r.errors else ""),
                ms(r.percentile(0.50)),
                ms(r.percentile(0.95)),
                ms(r.percentile(0.99)),
                f"{r.throughput:.1f}",
                ratio(r.percentile(0.50), floor.one_ms),
                f"{r.client_cpu:.2f}",
                server,
            ]
        )
    print_table(header, rows)


def comparison_table(on: list[LevelResult], off: list[LevelResult]) -> None:
    by_clients = {r.clients: r for r in off}
    rows = []
    for r in on:
        other = by_clients.get(r.clients)
        if other is None:
            continue
        rows.append(
            [
                str(r.clients),
                f"{r.throughput:.1f}",
                f"{other.throughput:.1f}",
                ratio(r.throughput, other.throughput),
                ms(r.percentile(0.50)),
                ms(other.percentile(0.50)),
                ms(r.percentile(0.99)),
                ms(other.percentile(0.99)),
            ]
        )
    header = ["clients", "img/s on", "img/s off", "on ÷ off", "p50 on", "p50 off", "p99 on"]
    print_table([*header, "p99 off"], rows)


def baseline_table(current: LevelResult, baseline: LevelResult) -> None:
    """p50 and p95 of one client, this version and the baseline, with their ratio."""
    rows = [
        [name, ms(result.percentile(0.5)), ms(result.percentile(0.95)), f"{result.throughput:.1f}"]
        for name, result in (("this guard", current), ("baseline", baseline))
    ]
    rows.append(
        [
            "ratio (this ÷ baseline)",
            ratio(current.percentile(0.5), baseline.percentile(0.5)),
            ratio(current.percentile(0.95), baseline.percentile(0.95)),
            ratio(current.throughput, baseline.throughput),
        ]
    )
    print_table(["version", "p50 ms", "p95 ms", "img/s"], rows)


def pooled(results: list[LevelResult]) -> LevelResult:
    """Several measurement windows of one server as one."""
    cpu = [r.server_cpu for r in results if r.server_cpu is not None]
    return LevelResult(
        batching=results[0].batching,
        clients=results[0].clients,
        window_s=sum(r.window_s for r in results),
        latencies_ms=sorted(v for r in results for v in r.latencies_ms),
        errors=sum(r.errors for r in results),
        client_cpu=sum(r.client_cpu for r in results) / len(results),
        server_cpu=sum(cpu) / len(cpu) if cpu else None,
    )


async def head_to_head(
    servers: list[tuple[str, str, int]], bodies: list[bytes], args: argparse.Namespace
) -> list[LevelResult]:
    """One client against each of ``servers`` (base URL, path, pid), both up at once, in
    alternating windows (A B, B A, …) so that neither gains from running first or from the
    machine's state drifting: run one after the other, the same guard measured 5–30 %
    apart."""
    windows: list[list[LevelResult]] = [[] for _ in servers]
    for server in servers:
        await warm_server(server[0], server[1], bodies, args.warmup)
    for round_ in range(args.rounds):
        order = list(range(len(servers)))
        for k in order if round_ % 2 == 0 else order[::-1]:
            base_url, path, pid = servers[k]
            windows[k].append(
                await run_level(
                    base_url,
                    path,
                    bodies,
                    1,
                    True,
                    pid,
                    args.warmup / 2,
                    args.duration / 2,
                    args.max_level_seconds,
                )
            )
    return [pooled(results) for results in windows]


def summary_table(on: list[LevelResult], off: list[LevelResult], floor: Floor) -> None:
    def level(results: list[LevelResult], clients: int) -> LevelResult | None:
        return next((r for r in results if r.clients == clients), None)

    def verdict(met: bool) -> str:
        return "met" if met else "missed"

    rows = []
    for label, results in (("batching on", on), ("batching off", off)):
        single = level(results, 1)
        if single is None:
            rows.append([f"p50, 1 client, {label}", "not measured", "≤ 10 ms", "—"])
            continue
        p50 = single.percentile(0.5)
        overhead = f"{p50:.1f} ms (floor {floor.one_ms:.1f} ms)"
        rows.append([f"p50, 1 client, {label}", overhead, "≤ 10 ms", verdict(p50 <= P50_TARGET_MS)])
    most = max((r.clients for r in on if level(off, r.clients)), default=None)
    if most is None:
        rows.append(["throughput on ÷ off", "not measured", "≥ 4×", "—"])
    else:
        on_most, off_most = level(on, most), level(off, most)
        assert on_most is not None and off_most is not None
        speedup = on_most.throughput / off_most.throughput if off_most.throughput else math.inf
        note = "" if most == 32 else " (target is at 32)"
        rows.append(
            [
                f"throughput at {most} clients, on ÷ off{note}",
                f"{speedup:.2f}× ({on_most.throughput:.1f} vs {off_most.throughput:.1f} img/s)",
                "≥ 4×",
                verdict(speedup >= SPEEDUP_TARGET),
            ]
        )
    best = floor.batch / floor.batch_ms * 1000
    rows.append(
        [
            f"ceiling: in-process batch of {floor.batch} ÷ batch of 1",
            f"{best:.1f} vs {1000 / floor.one_ms:.1f} img/s = {best * floor.one_ms / 1000:.2f}×",
            "(what batching can gain at most)",
            "",
        ]
    )
    print_table(["measure", "measured", "target", ""], rows)


# --- main ----------------------------------------------------------------------------------------


def parse_levels(text: str) -> list[int]:
    levels = sorted({int(part) for part in text.split(",") if part.strip()})
    if not levels or levels[0] < 1:
        raise argparse.ArgumentTypeError(f"expected positive client counts, got {text!r}")
    return levels


async def bench_mode(
    base_url: str,
    path: str,
    bodies: list[bytes],
    levels: list[int],
    batching: bool,
    server_pid: int,
    args: argparse.Namespace,
) -> list[LevelResult]:
    print(f"first image: {await warm_server(base_url, path, bodies, args.warmup)}")
    results = []
    for clients in levels:
        result = await run_level(
            base_url,
            path,
            bodies,
            clients,
            batching,
            server_pid,
            args.warmup,
            args.duration,
            args.max_level_seconds,
        )
        print(
            f"  {clients:>3} clients: p50 {ms(result.percentile(0.5))} ms, "
            f"{result.throughput:.1f} img/s"
        )
        results.append(result)
    return results


def stop_on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)  # runs the ``finally`` blocks that stop the server


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--guard", type=Path, help="guard folder (Guard.save); default: build one")
    parser.add_argument(
        "--duration", type=float, default=5.0, help="seconds measured per level (default 5)"
    )
    parser.add_argument(
        "--warmup", type=float, default=2.0, help="warm-up seconds per server and level (default 2)"
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=8,
        help="alternating windows per version in the baseline comparison (default 8)",
    )
    parser.add_argument(
        "--max-level-seconds",
        type=float,
        default=60.0,
        help="longest warm-up or window when requests are slow (default 60)",
    )
    parser.add_argument(
        "--clients",
        type=parse_levels,
        default=[1, 4, 16, 32],
        help="concurrency levels, comma-separated (default 1,4,16,32)",
    )
    parser.add_argument("--port", type=int, default=0, help="server port (default: a free one)")
    parser.add_argument("--max-batch", type=int, help="ADVGUARD_PREDICT_MAX_BATCH for the server")
    parser.add_argument("--max-wait-ms", type=float, help="ADVGUARD_PREDICT_MAX_WAIT_MS")
    parser.add_argument(
        "--off-first", action="store_true", help="run the server without batching first"
    )
    parser.add_argument(
        "--baseline",
        default=BASELINE_REVISION,
        help=f"git revision of the guard to compare with (default {BASELINE_REVISION}; "
        "'none' to skip)",
    )
    parser.add_argument(
        "--baseline-guard",
        type=Path,
        help="a guard saved by the baseline's version (default: a quick one built by it)",
    )
    parser.add_argument("--prepare", type=Path, help=argparse.SUPPRESS)
    parser.add_argument(
        "--threads",
        type=int,
        default=0,
        help="torch threads of the server and the floor (ADVGUARD_NUM_THREADS; 0, the "
        "server's default: one per core). On a busy machine 1 is steadier: two threads on "
        "two shared cores keep waiting for each other",
    )
    args = parser.parse_args()
    if args.prepare is not None:  # the baseline's half, run by prepare_baseline
        print(prepare_data_dir(args.prepare, args.guard))
        return
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    # The server runs under the CLI's allocator; give the in-process floor the same one.
    reexec_with_jemalloc([sys.executable, __file__, *sys.argv[1:]])
    tune_glibc_malloc()
    signal.signal(signal.SIGTERM, stop_on_sigterm)
    threads = configure_threads(args.threads)
    defaults = Settings()
    max_batch = args.max_batch or defaults.predict_max_batch
    max_wait_ms = defaults.predict_max_wait_ms if args.max_wait_ms is None else args.max_wait_ms
    extra_env = {
        "ADVGUARD_PREDICT_MAX_BATCH": str(max_batch),
        "ADVGUARD_PREDICT_MAX_WAIT_MS": str(max_wait_ms),
        "ADVGUARD_NUM_THREADS": str(threads),
    }
    allocator = "jemalloc" if "jemalloc" in os.environ.get("LD_PRELOAD", "") else "glibc"
    print(
        f"torch {torch.__version__}, {threads} torch threads (server and floor), "
        f"{os.cpu_count()} CPUs, "
        f"allocator: {allocator}, load average {os.getloadavg()[0]:.2f}"
    )
    print(f"micro-batching: up to {max_batch} images or {max_wait_ms:g} ms")

    with tempfile.TemporaryDirectory(prefix="advguard-bench-predict-") as temporary:
        work = Path(temporary)
        guard_dir = args.guard or build_quick_guard(work / "built")
        if args.guard is None:
            print(
                "  (trained briefly: predict runs the same passes whatever the weights, "
                "so its speed does not depend on how well the guard was trained)"
            )
        guard = Guard.load(guard_dir, serving=True)  # as the API loads it
        spec = guard.spec
        print(
            f"guard: {guard_dir} ({spec.in_channels}×{spec.image_size}×{spec.image_size}, "
            f"{len(spec.class_names)} classes, attacks {', '.join(guard.detector.attack_names)})"
        )
        pngs, origin = sample_pngs()
        bodies = [multipart_body(png, f"image-{k}.png") for k, png in enumerate(pngs)]
        print(f"requests: one {IMAGE_SIZE}×{IMAGE_SIZE} PNG each, cycling {len(pngs)} {origin}")

        floor = compute_floor(guard, pngs[0], max_batch)
        print("\nCompute floor: Guard.predict in this process (no HTTP, decoding or queueing):")
        print_table(
            ["batch", "ms per call", "ms per image", "img/s"],
            [
                [str(n), f"{t:.1f}", f"{t / n:.2f}", f"{n / t * 1000:.1f}"]
                for n, t in ((1, floor.one_ms), (floor.batch, floor.batch_ms))
            ],
        )
        data_dir = work / "data"
        detector_id = register_guard(data_dir, guard_dir, guard)
        del guard
        path = f"{PREDICT_PATH}?detector_id={detector_id}"
        results: dict[bool, list[LevelResult]] = {}
        for batching in (False, True) if args.off_first else (True, False):
            port = args.port or free_port()
            label = "on" if batching else "off"
            print(f"\nServer with batching {label} on 127.0.0.1:{port}:")
            with running_server(data_dir, port, batching, extra_env) as server:
                results[batching] = asyncio.run(
                    bench_mode(
                        f"http://127.0.0.1:{port}",
                        path,
                        bodies,
                        args.clients,
                        batching,
                        server.pid,
                        args,
                    )
                )
        head: list[LevelResult] | None = None
        if args.baseline != "none":
            print(f"\nBaseline: the guard at {args.baseline}, served by its own code:")
            source, baseline_dir, baseline_id = prepare_baseline(
                args.baseline, args.baseline_guard, work / "baseline"
            )
            env = {**extra_env, "PYTHONPATH": str(source)}
            ports = [args.port or free_port(), free_port()]
            with (
                running_server(data_dir, ports[0], True, extra_env) as current,
                running_server(baseline_dir, ports[1], True, env) as previous,
            ):
                head = asyncio.run(
                    head_to_head(
                        [
                            (f"http://127.0.0.1:{ports[0]}", path, current.pid),
                            (
                                f"http://127.0.0.1:{ports[1]}",
                                f"{PREDICT_PATH}?detector_id={baseline_id}",
                                previous.pid,
                            ),
                        ],
                        bodies,
                        args,
                    )
                )

    for batching in (True, False):
        print(f"\nBatching {'on' if batching else 'off (one forward per request)'}:")
        level_table(results[batching], floor)
    print(
        "p50 ÷ floor: client-measured median over the in-process Guard.predict of one image; "
        f"CPU columns in cores (of {os.cpu_count()}): the clients run on the same machine and "
        "compete with the server for the cores."
    )
    print("\nBatching on vs off:")
    comparison_table(results[True], results[False])
    if head is not None:
        print(
            f"\nOne image over HTTP, batching on, this guard vs the one at {args.baseline}, "
            f"{args.rounds} alternating windows of {args.duration / 2:g} s each:"
        )
        baseline_table(*head)
    print("\nTargets (2 cores):")
    summary_table(results[True], results[False], floor)
    print(f"load average at the end: {os.getloadavg()[0]:.2f} (timings are noisy under load)")


if __name__ == "__main__":
    main()
