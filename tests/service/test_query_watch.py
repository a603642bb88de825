"""The query watch through the API, with the real Redis: a stream of near-copies (what a
query-based attack sends) flags its client, distinct scans and re-sent scans do not, the
refuse policy answers 429, the window forgets, and two API processes share what they saw."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import numpy as np
import pytest
import redis
import torch
from conftest import ROOT, SERVICE_ENV, Pipeline, RedisServer, _free_port
from fastapi.testclient import TestClient
from PIL import Image

from advguard.api import create_app
from advguard.api.query_watch import PREFIX, QueryWatch
from advguard.config import Settings
from advguard.data import to_uint8
from advguard.data.synthetic import make_bundled_dataset

FLAG_AT = 8


def _png(image: torch.Tensor) -> bytes:
    pixels = to_uint8(image).squeeze(0).numpy()
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def scans() -> torch.Tensor:
    """Forty distinct synthetic scans at the service's 32 px."""
    return make_bundled_dataset(image_size=32, per_class={"train": 1, "test": 10})["test"].images


def attack_images(scan: torch.Tensor, queries: int, seed: int = 0) -> list[torch.Tensor]:
    """Square-attack-like queries, as 8-bit images: the scan plus ±8/255 stripes, then one
    random 4×4 square of the perturbation redrawn per query, each query building on the
    last."""
    generator = torch.Generator().manual_seed(seed)
    eps = 8 / 255
    delta = eps * (torch.randint(0, 2, (1, 1, scan.shape[-1]), generator=generator) * 2 - 1)
    delta = delta.expand_as(scan).clone().float()
    images = []
    for _ in range(queries):
        images.append(to_uint8(scan + delta).float() / 255)
        top, left = torch.randint(0, scan.shape[-1] - 4, (2,), generator=generator).tolist()
        sign = float(torch.randint(0, 2, (1,), generator=generator)) * 2 - 1
        delta[..., top : top + 4, left : left + 4] = sign * eps
    return images


def attack_stream(scan: torch.Tensor, queries: int, seed: int = 0) -> list[bytes]:
    """:func:`attack_images` as PNG uploads."""
    return [_png(image) for image in attack_images(scan, queries, seed)]


def predict(client: TestClient | httpx.Client, png: bytes, **headers: str) -> httpx.Response:
    """One scan through predict."""
    return client.post(
        "/api/v1/predict", files=[("files", ("scan.png", png, "image/png"))], headers=headers
    )


@contextmanager
def api_as(settings: Settings, address: str) -> Iterator[TestClient]:
    """The API, called from ``address``."""
    with TestClient(create_app(settings), client=(address, 50000)) as test_client:
        yield test_client


def forget_everything(redis_url: str) -> None:
    """Drop every key of the query watch."""
    store = redis.Redis.from_url(redis_url)
    keys = store.keys(PREFIX + "*")
    if keys:
        store.delete(*keys)


@pytest.fixture
def watched(
    service_settings: Settings, pipeline: Pipeline, redis_server: RedisServer
) -> Iterator[TestClient]:
    """The API with a fresh query watch (its Redis keys dropped), called from 10.0.0.1."""
    forget_everything(redis_server.url)
    with api_as(service_settings, "10.0.0.1") as client:
        yield client


def test_a_stream_of_near_copies_is_flagged_and_distinct_scans_are_not(watched, scans):
    for scan in scans:
        verdict = predict(watched, _png(scan)).json()["verdicts"][0]
        assert verdict["query_attack"]["suspected"] is False, verdict
        assert verdict["query_attack"]["matches"] <= 2
        assert verdict["query_attack"]["window"] == 1800
    assert watched.get("/api/v1/query-attacks").json()["clients"] == []

    stream = attack_stream(scans[0], 30)
    checks = [predict(watched, png).json()["verdicts"][0]["query_attack"] for png in stream]
    matches = [check["matches"] for check in checks]
    # Each query nearly copies the ones before it: the count climbs with the stream.
    assert matches[10] >= 5 and matches[-1] >= 12, matches
    first = next(k for k, check in enumerate(checks) if check["suspected"])
    assert first <= 20 and matches[first] >= FLAG_AT, matches
    assert all(check["suspected"] for check in checks[first:])
    flagged = watched.get("/api/v1/query-attacks").json()
    assert flagged["policy"] == "flag" and flagged["flag_at"] == FLAG_AT
    (client,) = flagged["clients"]
    assert client["client"] == "address:10.0.0.1"
    # A step that redraws a square with the signs it had sends the last image again: one query.
    assert client["matches"] == max(matches) and client["queries"] == 40 + len(set(stream))
    # Flag policy: every verdict is still answered.
    assert predict(watched, _png(scans[1])).status_code == 200


def test_a_scan_sent_again_is_one_query_not_a_match(watched, scans):
    png = _png(scans[3])
    checks = [predict(watched, png).json()["verdicts"][0]["query_attack"] for _ in range(20)]
    assert [check["matches"] for check in checks] == [0] * 20
    assert not any(check["suspected"] for check in checks)
    # The same scan twice in one request, too.
    answer = watched.post(
        "/api/v1/predict",
        files=[("files", ("a.png", png, "image/png")), ("files", ("b.png", png, "image/png"))],
    )
    assert [v["query_attack"]["matches"] for v in answer.json()["verdicts"]] == [0, 0]
    assert watched.get("/api/v1/query-attacks").json()["clients"] == []


def test_the_refuse_policy_answers_429_until_an_operator_clears_the_client(
    service_settings: Settings, pipeline: Pipeline, scans
):
    settings = service_settings.model_copy(update={"query_watch_policy": "refuse"})
    with api_as(settings, "10.0.1.1") as client:
        client.delete("/api/v1/query-attacks/address:10.0.1.1")
        answers = [predict(client, png) for png in attack_stream(scans[5], 25, seed=1)]
        codes = [answer.status_code for answer in answers]
        refused = codes.index(429)
        assert refused <= 20 and set(codes[:refused]) == {200} and set(codes[refused:]) == {429}
        assert answers[refused - 1].json()["verdicts"][0]["query_attack"]["suspected"] is False
        body = answers[refused].json()
        assert "query attack suspected" in body["detail"] and "10.0.1.1" in body["detail"]
        assert answers[refused].headers["Retry-After"] == "1800"
        # A flagged client is refused whatever it sends, until the flag is cleared.
        assert predict(client, _png(scans[6])).status_code == 429
        assert client.delete("/api/v1/query-attacks/address:10.0.1.1").status_code == 204
        assert predict(client, _png(scans[6])).status_code == 200
        assert client.delete("/api/v1/query-attacks/address:10.0.1.1").status_code == 204
        missing = client.delete("/api/v1/query-attacks/address:10.0.1.1")
        assert missing.status_code == 404 and "no query history" in missing.json()["detail"]


def test_the_window_forgets_old_queries_and_old_flags(watched, scans):
    watch: QueryWatch = watched.app.state.query_watch  # type: ignore[attr-defined]
    now = time.time()
    watch.clock = lambda: now
    stream = attack_stream(scans[7], 24, seed=2)
    checks = [predict(watched, png).json()["verdicts"][0]["query_attack"] for png in stream[:20]]
    assert checks[-1]["suspected"]
    now += 1800 + 1  # one window later
    check = predict(watched, stream[20]).json()["verdicts"][0]["query_attack"]
    assert check == {"suspected": False, "matches": 0, "window": 1800}
    assert watched.get("/api/v1/query-attacks").json()["clients"] == []
    # Within the window the history counts: half a window on, the stream goes on matching.
    now += 900
    check = predict(watched, stream[21]).json()["verdicts"][0]["query_attack"]
    assert check["matches"] == 1


@pytest.fixture
def two_apis(pipeline: Pipeline, redis_server: RedisServer) -> Iterator[list[str]]:
    """Two API processes (uvicorn, as ``advguard serve`` runs it) on the same Redis."""
    processes, urls = [], []
    log = (ROOT / "two-apis.log").open("ab")
    for _ in range(2):
        port = _free_port()
        processes.append(
            subprocess.Popen(
                [sys.executable, "-m", "advguard.cli", "serve", "--port", str(port)],
                env={**os.environ, **SERVICE_ENV},
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        )
        urls.append(f"http://127.0.0.1:{port}")
    try:
        deadline = time.monotonic() + 120
        for process, url in zip(processes, urls, strict=True):
            while True:
                assert process.poll() is None, (ROOT / "two-apis.log").read_text()[-3000:]
                assert time.monotonic() < deadline, "the API processes did not start"
                try:
                    if httpx.get(url + "/api/v1/health", timeout=1).status_code == 200:
                        break
                except httpx.TransportError:
                    time.sleep(0.2)  # still starting: poll as a client would
        yield urls
    finally:
        for process in processes:
            process.terminate()
            process.wait(timeout=30)


def test_two_api_processes_share_what_a_client_sent(two_apis, scans, redis_server):
    first, second = (httpx.Client(base_url=url, timeout=60) for url in two_apis)
    # Behind a proxy on this host, the client is the address it forwards.
    address = {"X-Forwarded-For": "10.0.2.1"}
    first.delete("/api/v1/query-attacks/address:10.0.2.1")
    stream = attack_stream(scans[9], 30, seed=3)
    checks = [
        predict(api, png, **address).json()["verdicts"][0]["query_attack"]
        for api, png in zip([first] * 20 + [second] * 10, stream, strict=True)
    ]
    assert checks[19]["suspected"], checks
    # The second process never saw this client itself: its first answer already counts the
    # queries the first one logged, and both list the client.
    assert checks[20]["matches"] >= FLAG_AT and checks[20]["suspected"], checks[20]
    listed = [client["client"] for client in second.get("/api/v1/query-attacks").json()["clients"]]
    assert "address:10.0.2.1" in listed
    assert listed == [c["client"] for c in first.get("/api/v1/query-attacks").json()["clients"]]


def _watch(redis_url: str, **overrides: int) -> QueryWatch:
    settings: dict[str, int] = {"max_hashes": 4000, "max_clients": 1000, **overrides}
    return QueryWatch(
        redis_url,
        window_s=1800,
        policy="flag",
        flag_at=FLAG_AT,
        match_hashes=20,
        max_hashes=settings["max_hashes"],
        max_clients=settings["max_clients"],
        max_log=settings.get("max_log", 20_000),
    )


def test_a_restarted_process_replays_the_window_from_the_log(redis_server, scans):
    forget_everything(redis_server.url)
    stream = attack_images(scans[8], 16, seed=4)
    before = _watch(redis_server.url)
    before.start()
    for image in stream[:15]:
        before.check("address:10.0.3.1", image.unsqueeze(0))
    before.close()  # writes what it saw first

    after = _watch(redis_server.url)
    after.start()
    try:
        (check,) = after.check("address:10.0.3.1", stream[15].unsqueeze(0))
        assert check is not None and check.matches >= FLAG_AT and check.suspected, check
        assert [flag.client for flag in after.flagged()] == ["address:10.0.3.1"]
    finally:
        after.close()


def test_a_flood_of_clients_and_of_images_stays_bounded(redis_server: RedisServer):
    forget_everything(redis_server.url)
    store = redis.Redis.from_url(redis_server.url)
    watch = _watch(redis_server.url, max_hashes=300, max_clients=25, max_log=100)
    watch.start()
    rng = np.random.default_rng(0)
    for client in range(200):  # 200 clients, one random image each
        image = torch.from_numpy(rng.random((1, 1, 32, 32), dtype=np.float32))
        assert watch.check(f"address:flood-{client}", image)[0] is not None
    for _ in range(40):  # one client, forty distinct images
        image = torch.from_numpy(rng.random((1, 1, 32, 32), dtype=np.float32))
        assert watch.check("address:busy", image)[0] is not None
    watch.flush()
    footprint = watch.footprint()
    watch.close()
    assert footprint.clients == 25 and 250 <= footprint.most_fields <= 300, footprint
    keys = {PREFIX + "key", PREFIX + "logs", watch.log}
    assert {key.decode() for key in store.keys(PREFIX + "*")} == keys
    assert all(0 < store.ttl(key) <= 1800 for key in keys - {PREFIX + "key"})
    assert store.xlen(watch.log) == 100
    # Hashes only: each entry is a client, a time, a 16-byte digest, 8-byte sealed hashes
    # and the match count.
    for _, fields in store.xrange(watch.log):
        assert set(fields) == {b"c", b"t", b"d", b"h", b"m"}, fields
        assert len(fields[b"d"]) == 16 and len(fields[b"h"]) == 8 * 50
        assert fields[b"c"].startswith(b"address:") and int(fields[b"m"]) >= 0


def test_predict_goes_on_while_its_redis_is_down(watched, scans, redis_server):
    watch: QueryWatch = watched.app.state.query_watch  # type: ignore[attr-defined]
    watch.retry_after_s = 0.05
    stream = attack_stream(scans[2], 24, seed=5)
    assert predict(watched, stream[0]).json()["verdicts"][0]["query_attack"] is not None
    watch.flush()
    redis_server.stop()
    try:
        # This process matches what it sees on its own: the stream is still flagged.
        checks = [
            predict(watched, png).json()["verdicts"][0]["query_attack"] for png in stream[1:20]
        ]
        assert checks[-1]["suspected"] and checks[-1]["matches"] >= FLAG_AT, checks
        listed = watched.get("/api/v1/query-attacks")
        assert (
            listed.status_code == 200
            and listed.json()["clients"][0]["client"] == "address:10.0.0.1"
        )
        watch.flush()  # the writer gave up on the outage's entries
    finally:
        redis_server.start()
    watch.sync()  # back in the log (what the follower does on its own within retry_after_s)
    for png in stream[20:]:
        assert predict(watched, png).json()["verdicts"][0]["query_attack"]["suspected"]
    watch.flush()
    # Shared again after the outage: the log has the query before it and the four after.
    assert redis.Redis.from_url(redis_server.url).xlen(watch.log) == 1 + 4
