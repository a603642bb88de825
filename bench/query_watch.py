"""The query watch against real black-box attacks over HTTP, a clinic's benign stream, and
what it costs predict.

Starts Redis and the real server (``advguard serve``) on loopback in a fresh data directory
with one guard registered, then, from this process as an HTTP client:

1. **Attacks**: Square (L∞, 8/255) and HopSkipJump (L2, labels only) run against the
   service: the attacked model is a module whose forward posts each image as an 8-bit PNG
   to ``POST /api/v1/predict`` and reads the answer (Square the class probabilities,
   HopSkipJump only the top label). Each run attacks one brain-mri-4class test scan from
   its own client address (sent as ``X-Forwarded-For``, which the server trusts from
   loopback). Per run: queries until the first verdict with ``query_attack.suspected``,
   queries the attack sent in all, whether it changed the label, and whether the guard's
   own detector rejected its final image.
2. **A clinic**: one client sends every test scan once, each followed by the variants a
   clinic produces: JPEG re-exports (quality 95 and 75), crops of 4 and 8 pixels per side
   scaled back, left-right and up-down flips, contrast ×1.1 and ×0.9, brightness ×1.05. No
   verdict may be suspected.
3. **Cost**: predict p50 for one image with the watch on and off: two servers up at once
   (one with ``ADVGUARD_QUERY_WATCH=false``), one client sending each scan to both in turn,
   so both are measured on one machine at one time.

Targets (issue 18): every attack flagged within 50 queries; no benign verdict suspected;
p50 grows by at most 1 ms.

The guard: ``--guard DIR`` (a folder written by ``Guard.save``); or ``--model DIR`` (a
classifier saved by ``advguard train``, e.g. on brain-mri-4class) with a detector trained
here on a small FGSM/PGD set of ``--data``; or, with neither, the quick bundled guard of
``bench/predict.py``. The watch judges queries, not the model, but the model decides how
long an attack runs.

Usage: python bench/query_watch.py [--guard DIR | --model DIR] [--runs 8] [--queries 300]
       [--latency-rounds 2]
"""

from __future__ import annotations

import argparse
import io
import math
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import torch
from PIL import Image, ImageEnhance, ImageOps
from torch import Tensor, nn

from advguard.attacks import ATTACKS
from advguard.config import Settings
from advguard.data import load_dataset, real_mri_path, to_uint8
from advguard.guard import Guard
from advguard.runtime import configure_threads
from advguard.service import start_redis

sys.path.insert(0, str(Path(__file__).resolve().parent))
import predict as predict_bench

PREDICT_PATH = "/api/v1/predict"
QUERIES_TARGET = 50
OVERHEAD_TARGET_MS = 1.0
EPS = 8 / 255


def guard_for_model(model_dir: Path, data: str, directory: Path) -> Path:
    """``model_dir``'s classifier behind a detector trained here on a small FGSM/PGD set
    built from ``data`` (a few minutes on 2 cores)."""
    from advguard.detection import (
        BuildConfig,
        DetectorConfig,
        build_adversarial_set,
        default_attack_specs,
        train_detector,
    )
    from advguard.models import load_model

    model, spec = load_model(model_dir)
    dataset = load_dataset(data, image_size=spec.image_size)
    print(f"training a detector for {model_dir} on {data} (a few minutes)")
    adversarial = build_adversarial_set(
        model,
        dataset.splits,
        directory / "set",
        BuildConfig(specs=default_attack_specs(["fgsm", "pgd"], [EPS]), fraction=0.1),
        show_progress=False,
    )
    detector, _ = train_detector(model, adversarial, DetectorConfig(epochs=20), show_progress=False)
    return Guard(model, spec, detector).save(directory / "guard")


def test_scans() -> list[Image.Image]:
    """Every brain-mri-4class test scan (grayscale 128×128), class by class."""
    root = real_mri_path() / "test"
    if not root.is_dir():
        raise SystemExit(f"the brain-mri-4class test split is not at {root}")
    return [Image.open(file).convert("L") for file in sorted(root.glob("*/*.png"))]


def tensor_png(image: Tensor) -> bytes:
    """A 1×H×W image in [0, 1] as the 8-bit PNG an attacker would upload."""
    return predict_bench.png_bytes(Image.fromarray(to_uint8(image).squeeze(0).numpy(), mode="L"))


def clinic_variants(scan: Image.Image) -> list[Image.Image]:
    """What a clinic sends again of one scan: re-exports, crops, flips, contrast."""
    variants = []
    for quality in (95, 75):
        buffer = io.BytesIO()
        scan.save(buffer, format="JPEG", quality=quality)
        variants.append(Image.open(io.BytesIO(buffer.getvalue())).convert("L"))
    width, height = scan.size
    for margin in (4, 8):
        crop = scan.crop((margin, margin, width - margin, height - margin))
        variants.append(crop.resize((width, height), Image.Resampling.BILINEAR))
    variants += [ImageOps.mirror(scan), ImageOps.flip(scan)]
    variants += [ImageEnhance.Contrast(scan).enhance(factor) for factor in (1.1, 0.9)]
    variants.append(ImageEnhance.Brightness(scan).enhance(1.05))
    return variants


class RemoteClassifier(nn.Module):
    """The service as an attacker sees it: images in, the answers of predict out.

    ``forward`` returns log class probabilities (what Square reads; HopSkipJump takes only
    the arg-max). Every image is one query; each verdict and its ``query_attack`` is kept.
    """

    def __init__(self, client: httpx.Client, address: str, chunk: int = 32) -> None:
        super().__init__()
        self.client = client
        self.address = address
        self.chunk = chunk
        self.checks: list[dict | None] = []
        self.verdicts: list[dict] = []

    def forward(self, images: Tensor) -> Tensor:
        rows = []
        for start in range(0, len(images), self.chunk):
            files = [
                ("files", (f"q{k}.png", tensor_png(image), "image/png"))
                for k, image in enumerate(images[start : start + self.chunk])
            ]
            answer = self.client.post(
                PREDICT_PATH, files=files, headers={"X-Forwarded-For": self.address}
            )
            answer.raise_for_status()
            for verdict in answer.json()["verdicts"]:
                self.verdicts.append(verdict)
                self.checks.append(verdict["query_attack"])
                probabilities = verdict["class_probabilities"].values()
                rows.append([math.log(max(p, 1e-12)) for p in probabilities])
        return torch.tensor(rows)

    def first_flag(self) -> int | None:
        """The 1-based query at which the client was first suspected."""
        for k, check in enumerate(self.checks):
            if check is not None and check["suspected"]:
                return k + 1
        return None


@dataclass
class AttackRun:
    attack: str
    scan: int
    queries: int
    flagged_at: int | None
    label_changed: bool
    final_rejected: bool


def run_attack(
    client: httpx.Client, name: str, scan: Tensor, index: int, queries: int
) -> AttackRun:
    """One attack on one scan from its own client address."""
    remote = RemoteClassifier(client, f"10.18.{len(name)}.{index + 1}")
    with torch.no_grad():
        label = remote(scan[None]).argmax(1)
        if name == "square":
            attack = ATTACKS["square"](remote, eps=EPS, n_queries=queries, seed=index)
        else:
            attack = ATTACKS["hopskipjump"](remote, max_queries=queries, seed=index)
        adversarial = attack(scan[None], label)
        sent = len(remote.checks)
        final = remote(adversarial)
    verdict = remote.verdicts[-1]
    return AttackRun(
        attack=name,
        scan=index,
        queries=sent,
        flagged_at=remote.first_flag(),
        label_changed=bool(final.argmax(1) != label),
        final_rejected=verdict["label"] is None,
    )


def benign_stream(client: httpx.Client, scans: list[Image.Image]) -> tuple[int, int, int]:
    """Queries, suspected verdicts and the most matches of one clinic's stream."""
    sent = suspected = most = 0
    for scan in scans:
        for image in [scan, *clinic_variants(scan)]:
            answer = client.post(
                PREDICT_PATH,
                files=[("files", ("scan.png", predict_bench.png_bytes(image), "image/png"))],
                headers={"X-Forwarded-For": "10.18.0.1"},
            )
            answer.raise_for_status()
            check = answer.json()["verdicts"][0]["query_attack"]
            sent += 1
            suspected += bool(check["suspected"])
            most = max(most, check["matches"])
    return sent, suspected, most


def latency(
    clients: dict[str, httpx.Client], scans: list[bytes], rounds: int
) -> dict[str, list[float]]:
    """One-image predict times (ms) per server: each scan goes to every server in turn
    (the order flipped every other scan), ``rounds`` times over, so that both servers are
    measured under the same conditions, request by request."""
    times: dict[str, list[float]] = {name: [] for name in clients}
    names = list(clients)
    for round_index in range(rounds):
        for k, body in enumerate(scans):
            for name in names if (k + round_index) % 2 == 0 else names[::-1]:
                start = time.perf_counter()
                answer = clients[name].post(
                    PREDICT_PATH,
                    files=[("files", ("scan.png", body, "image/png"))],
                    headers={"X-Forwarded-For": f"10.19.{round_index % 250}.{k % 250 + 1}"},
                )
                answer.raise_for_status()
                times[name].append((time.perf_counter() - start) * 1000)
    return times


@contextmanager
def service(work: Path, detector_dir: Path, watch: bool, redis_url: str) -> Iterator[httpx.Client]:
    data_dir = work / ("watch-on" if watch else "watch-off")
    data_dir.mkdir(parents=True)
    predict_bench.register_guard(data_dir, detector_dir, Guard.load(detector_dir, serving=True))
    port = predict_bench.free_port()
    extra = {
        "ADVGUARD_BROKER_URL": redis_url,
        "ADVGUARD_QUERY_WATCH": "true" if watch else "false",
        "ADVGUARD_NUM_THREADS": os.environ.get("ADVGUARD_NUM_THREADS", "0"),
    }
    with (
        predict_bench.running_server(data_dir, port, True, extra),
        httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=120, trust_env=False) as client,
    ):
        yield client


def unflagged(run: AttackRun) -> str:
    """What an unflagged run did."""
    outcome = "changed the label" if run.label_changed else "failed"
    rejected = ", final image rejected by the detector" if run.final_rejected else ""
    return f"{run.queries} queries, {outcome}{rejected}"


def summary(runs: list[AttackRun]) -> list[list[str]]:
    rows = []
    for name in ("square", "hopskipjump"):
        mine = [run for run in runs if run.attack == name]
        flagged = [run.flagged_at for run in mine if run.flagged_at is not None]
        long_runs = [run for run in mine if run.queries > QUERIES_TARGET]
        caught = [
            run
            for run in long_runs
            if run.flagged_at is not None and run.flagged_at <= QUERIES_TARGET
        ]
        rows.append(
            [
                name,
                f"{len(flagged)}/{len(mine)}",
                f"{statistics.median(flagged):.0f}" if flagged else "–",
                str(max(flagged)) if flagged else "–",
                f"{len(caught)}/{len(long_runs)}",
                "; ".join(unflagged(run) for run in mine if run.flagged_at is None) or "–",
            ]
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--guard", type=Path, help="a guard folder (Guard.save)")
    source.add_argument("--model", type=Path, help="a classifier folder (advguard train)")
    parser.add_argument("--data", default="brain-mri-4class", help="data for --model's detector")
    parser.add_argument("--runs", type=int, default=8, help="scans attacked per attack (8)")
    parser.add_argument("--queries", type=int, default=300, help="query budget per run (300)")
    parser.add_argument(
        "--latency-rounds", type=int, default=2, help="passes over the scans, per server (2)"
    )
    parser.add_argument("--skip-benign", action="store_true", help="leave out the clinic")
    args = parser.parse_args()
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    configure_threads(0)
    scans = test_scans()
    defaults = Settings()
    print(
        f"query watch: window {defaults.query_watch_window_s} s, flag at "
        f"{defaults.query_watch_flag_at} matches, {defaults.query_watch_match_hashes} shared "
        f"hashes make a match; {len(scans)} brain-mri-4class test scans"
    )
    with (
        tempfile.TemporaryDirectory(prefix="advguard-bench-qw-") as temporary,
        ExitStack() as stack,
    ):
        work = Path(temporary)
        if args.guard is not None:
            guard_dir = args.guard
        elif args.model is not None:
            guard_dir = guard_for_model(args.model, args.data, work / "built")
        else:
            guard_dir = predict_bench.build_quick_guard(work / "built")
        redis_port = predict_bench.free_port()
        redis = start_redis(redis_port, work / "redis")
        stack.callback(redis.terminate)
        redis_url = f"redis://127.0.0.1:{redis_port}/0"
        watched = stack.enter_context(service(work, guard_dir, True, redis_url))
        unwatched = stack.enter_context(service(work, guard_dir, False, redis_url))

        # Attack runs: --runs scans spread evenly over the split (so over its classes).
        chosen = list(range(0, len(scans), len(scans) // args.runs))[: args.runs]
        runs = []
        for name in ("square", "hopskipjump"):
            for index in chosen:
                scan = torch.from_numpy(np.asarray(scans[index], dtype=np.float32) / 255)[None]
                started = time.perf_counter()
                run = run_attack(watched, name, scan, index, args.queries)
                runs.append(run)
                print(
                    f"  {name} scan {index}: {run.queries} queries, flagged at "
                    f"{run.flagged_at}, label changed {run.label_changed}, final image "
                    f"rejected {run.final_rejected} ({time.perf_counter() - started:.0f} s)"
                )
        print("\nAttacks over HTTP (each run its own client):")
        predict_bench.print_table(
            [
                "attack",
                "runs flagged",
                "median queries to flag",
                "most queries to flag",
                f"runs > {QUERIES_TARGET} queries flagged by query {QUERIES_TARGET}",
                "runs never flagged",
            ],
            summary(runs),
        )

        if not args.skip_benign:
            started = time.perf_counter()
            sent, suspected, most = benign_stream(watched, scans)
            print(f"\nA clinic ({time.perf_counter() - started:.0f} s):")
            predict_bench.print_table(
                ["queries", "scans", "variants per scan", "suspected verdicts", "most matches"],
                [
                    [
                        str(sent),
                        str(len(scans)),
                        str(len(clinic_variants(scans[0]))),
                        str(suspected),
                        str(most),
                    ]
                ],
            )

        bodies = [predict_bench.png_bytes(scan) for scan in scans]
        times = latency({"watch on": watched, "watch off": unwatched}, bodies, args.latency_rounds)
        on, off = (statistics.median(times[name]) for name in ("watch on", "watch off"))
        paired = statistics.median(
            a - b for a, b in zip(times["watch on"], times["watch off"], strict=True)
        )
        print("\nOne-image predict, one client:")
        predict_bench.print_table(
            ["server", "requests", "p50 ms", "p95 ms"],
            [
                [name, str(len(values)), f"{statistics.median(values):.2f}",
                 f"{statistics.quantiles(values, n=20)[-1]:.2f}"]
                for name, values in times.items()
            ],
        )  # fmt: skip
        print(
            f"p50 overhead: {on - off:+.2f} ms (target ≤ {OVERHEAD_TARGET_MS:.0f} ms), ratio "
            f"{on / off:.3f}; median of the paired differences (same scan, one after the "
            f"other): {paired:+.2f} ms"
        )


if __name__ == "__main__":
    main()
