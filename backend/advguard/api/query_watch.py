"""Noticing black-box attacks from each client's stream of predict queries.

Every image a client sends to predict is fingerprinted
(:mod:`advguard.detection.fingerprint`) and compared with that client's queries of the last
``window`` seconds: its *matches* are how many of them it nearly duplicates (they share at
least ``match_hashes`` of its hashes). A query with ``flag_at`` matches or more flags the
client for ``window`` seconds; the policy then flags verdicts or refuses predict (429).
An identical image sent again is one query: it is neither recorded twice nor a match.

Where the state lives: each API process matches against an index in its own memory, so
predict never waits on the network (a Redis round trip per request cost predict's p50
1.3–3.6 ms on 2 cores; the in-memory match costs well under one). Redis is the shared log
that makes the processes one watch:

- ``advguard:qw:log:<process>``: one stream per API process with one entry per query it
  answered (client, time, the image's digest, its sealed hashes, its matches) and one per
  client an operator cleared. A writer thread appends after matching; a follower thread
  reads the other processes' logs (listed in ``advguard:qw:logs`` with their last write)
  and applies their entries, so a replica sees another's queries a few milliseconds late.
  Each process reads only the others' logs: reading its own entries back cost predict
  more than a millisecond on 2 cores. A process that starts (or restarts) reads every log
  from the start of the window first, so a restart loses nothing. Each log keeps at most
  ``max_log`` entries and expires a window after its last write.
- ``advguard:qw:key``: the random sealing key, made once by whichever process comes first,
  so that every replica's fingerprints agree.

Nothing stored or logged is an image: fingerprints are hashes of runs of coarse grey levels
mixed with the secret key (8 bytes each), digests are keyed BLAKE2b. In memory, each
process keeps at most ``max_clients`` clients (least recently seen dropped) and
``max_hashes`` fields per client and half window. While Redis is unreachable, each process
goes on matching what it sees itself and its entries are not shared; when Redis comes back
empty, the first process to reconnect sets the key again and the others, whose hashes were
sealed with another key, start afresh.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import queue
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal, cast

import numpy as np
import redis
import torch
from numpy.typing import NDArray
from redis.exceptions import RedisError
from torch import Tensor

from advguard.detection.fingerprint import (
    DEFAULT_FINGERPRINT,
    FingerprintConfig,
    sealed_fingerprints,
)

logger = logging.getLogger("advguard.api.query_watch")

PREFIX = "advguard:qw:"
LOG_PREFIX = PREFIX + "log:"
LOGS = PREFIX + "logs"
KEY = PREFIX + "key"
BUCKETS = 2
"""The window is kept as this many buckets per client; a query is compared with the
buckets of the last window (so a match can be between ½ and one window old before it
goes)."""

Policy = Literal["flag", "refuse"]

# What redis-py returns from XREAD (bytes, not decoded), and what XADD takes.
_StreamReply = list[tuple[bytes, list[tuple[bytes, dict[bytes, bytes]]]]]
_Positions = dict[bytes | str | memoryview, int | bytes | str | memoryview]
_Fields = dict[
    bytes | bytearray | memoryview | str | int | float,
    bytes | bytearray | memoryview | str | int | float,
]


@dataclass(frozen=True)
class QueryAttackCheck:
    """What one query's fingerprint says about its client's stream."""

    suspected: bool
    """The client is flagged: one of its queries of the last window matched ``flag_at`` or
    more of its earlier ones."""
    matches: int
    """Earlier queries of the client, in the window, that this image nearly duplicates."""
    window: int
    """The window in seconds."""


@dataclass(frozen=True)
class FlaggedClient:
    client: str
    first_flagged: float
    last_flagged: float
    matches: int
    """The most earlier queries one of its queries nearly duplicated."""
    queries: int
    """Its queries in the window when it was last flagged."""


@dataclass(frozen=True)
class Fingerprints:
    """One request's images as the watch sees them: hashes only."""

    digests: list[bytes]
    """A keyed digest of each whole image, to know an image sent again."""
    hashes: list[NDArray[np.uint64]]
    """Each image's sealed fingerprint hashes."""


@dataclass(frozen=True)
class _Query:
    """A query this process answered, as its log entry will say (made into the entry's
    fields by the writer thread, off predict's path)."""

    client: str
    at: float
    digest: bytes
    hashes: NDArray[np.uint64]
    matches: int

    def fields(self) -> dict[bytes, bytes]:
        return {
            b"c": self.client.encode(),
            b"t": repr(self.at).encode(),
            b"d": self.digest,
            b"h": self.hashes.astype("<u8").tobytes(),
            b"m": str(self.matches).encode(),
        }


@dataclass(frozen=True)
class Footprint:
    """How much the watch holds in this process's memory (all bounded by its settings)."""

    clients: int
    flagged: int
    most_fields: int
    """The most fields (hashes and digests) in one client's bucket."""


@dataclass
class _Bucket:
    """One client's queries in one half window."""

    counts: dict[int, int] = field(default_factory=dict)
    """Sealed hash → how many of the queries had it."""
    digests: set[bytes] = field(default_factory=set)
    queries: int = 0

    @property
    def fields(self) -> int:
        return len(self.counts) + len(self.digests)


class _Index:
    """Every tracked client's recent queries and flags; not thread-safe (the watch locks)."""

    def __init__(
        self, window_s: int, match_hashes: int, flag_at: int, max_hashes: int, max_clients: int
    ) -> None:
        self.window_s = window_s
        self.span = window_s / BUCKETS
        self.match_hashes = match_hashes
        self.flag_at = flag_at
        self.max_hashes = max_hashes
        self.max_clients = max_clients
        self.clients: OrderedDict[str, dict[int, _Bucket]] = OrderedDict()
        self.flags: OrderedDict[str, FlaggedClient] = OrderedDict()

    def _buckets(self, client: str, now: float) -> dict[int, _Bucket]:
        """The client's live buckets (older ones dropped); tracks the client, bounded."""
        buckets = self.clients.get(client)
        if buckets is None:
            buckets = self.clients[client] = {}
            while len(self.clients) > self.max_clients:
                self.clients.popitem(last=False)
        self.clients.move_to_end(client)
        oldest = int(now // self.span) - BUCKETS + 1
        for stale in [number for number in buckets if number < oldest]:
            del buckets[stale]
        return buckets

    def add(
        self,
        client: str,
        now: float,
        at: float,
        digest: bytes,
        hashes: list[int],
        matches: int | None = None,
    ) -> int:
        """Record a query made at ``at`` and return its matches: computed here for this
        process's queries, as the sending process found them for another's."""
        buckets = self._buckets(client, now)
        repeated = any(digest in bucket.digests for bucket in buckets.values())
        if matches is None:
            matches = 0
            if len(hashes) >= self.match_hashes:
                totals = [0] * len(hashes)
                for bucket in buckets.values():
                    count = bucket.counts.get
                    totals = [
                        total + count(value, 0) for total, value in zip(totals, hashes, strict=True)
                    ]
                totals.sort()
                # a re-sent image finds its own earlier copy in every one of its hashes
                matches = max(totals[-self.match_hashes] - repeated, 0)
        number = int(at // self.span)
        if not repeated and number > int(now // self.span) - BUCKETS:
            bucket = buckets.setdefault(number, _Bucket())
            counts = bucket.counts
            if bucket.fields + len(hashes) + 1 <= self.max_hashes:
                for value in hashes:
                    counts[value] = counts.get(value, 0) + 1
                bucket.digests.add(digest)
            else:  # full: only the hashes it already has go on counting
                for value in hashes:
                    if value in counts:
                        counts[value] += 1
            bucket.queries += 1
        if matches >= self.flag_at and at > now - self.window_s:
            self._flag(client, at, matches, sum(b.queries for b in buckets.values()))
        return matches

    def _flag(self, client: str, at: float, matches: int, queries: int) -> None:
        known = self.flags.pop(client, None)
        self.flags[client] = FlaggedClient(
            client=client,
            first_flagged=min(at, known.first_flagged) if known else at,
            last_flagged=max(at, known.last_flagged) if known else at,
            matches=max(matches, known.matches) if known else matches,
            queries=max(queries, known.queries) if known else queries,
        )
        while len(self.flags) > self.max_clients:
            self.flags.popitem(last=False)

    def flagged(self, now: float) -> list[FlaggedClient]:
        """Clients flagged within the window, most recently flagged first."""
        for client in [
            c for c, flag in self.flags.items() if flag.last_flagged <= now - self.window_s
        ]:
            del self.flags[client]
        return sorted(self.flags.values(), key=lambda flag: flag.last_flagged, reverse=True)

    def forget(self, client: str) -> bool:
        had_queries = self.clients.pop(client, None) is not None
        had_flag = self.flags.pop(client, None) is not None
        return had_queries or had_flag

    def clear(self) -> None:
        self.clients.clear()
        self.flags.clear()

    def footprint(self) -> Footprint:
        fields = [bucket.fields for buckets in self.clients.values() for bucket in buckets.values()]
        return Footprint(len(self.clients), len(self.flags), max(fields, default=0))


class QueryWatch:
    """Per-client query fingerprints, matched in memory, shared through Redis (see the
    module docstring). Start its threads with :meth:`start`, stop them with :meth:`close`."""

    def __init__(
        self,
        redis_url: str,
        *,
        window_s: int,
        policy: Policy,
        flag_at: int,
        match_hashes: int,
        max_hashes: int,
        max_clients: int,
        max_log: int = 20_000,
        config: FingerprintConfig = DEFAULT_FINGERPRINT,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not 1 <= match_hashes <= config.keep:
            raise ValueError(f"match_hashes must be within 1..{config.keep}, got {match_hashes}")
        self.redis = redis.Redis.from_url(redis_url, socket_timeout=2.0, socket_connect_timeout=1.0)
        self.window_s = window_s
        self.policy = policy
        self.flag_at = flag_at
        self.max_log = max_log
        self.config = config
        self.clock = clock
        self.write_delay_s = 0.02
        """The writer waits this long after a query before writing (see ``_write``)."""
        self.retry_after_s = 5.0
        """After Redis failed, the follower waits this long before trying again."""
        self.origin = os.urandom(8).hex().encode()
        """This process's name among the logs."""
        self.log = LOG_PREFIX + self.origin.decode()
        """This process's log (a Redis stream)."""
        self._key: bytes | None = None
        self._positions: dict[bytes, bytes] = {}
        """The other processes' logs this one follows → the last entry it applied."""
        self._index = _Index(window_s, match_hashes, flag_at, max_hashes, max_clients)
        self._lock = threading.Lock()
        self._follow_lock = threading.Lock()
        self._outbox: queue.Queue[_Query | dict[bytes, bytes] | None] = queue.Queue(maxsize=10_000)
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self._down = False
        self._announced = -math.inf
        """When this process last listed its log in ``advguard:qw:logs``."""

    # --- lifecycle -----------------------------------------------------------------------

    def start(self) -> None:
        """Join the shared log (sealing key, the last window replayed) if Redis answers,
        then follow it and write to it from two daemon threads."""
        # load the compiled fingerprint now, not on the first predict (compiled on the
        # first start after an install, ~5 s; then read from numba's cache)
        sealed_fingerprints(torch.zeros(1, 1, 32, 32), bytes(16), self.config)
        try:
            self.sync()
        except (RedisError, OSError) as error:
            self._failed(error)
        for target, name in ((self._follow, "follower"), (self._write, "writer")):
            thread = threading.Thread(target=target, name=f"query-watch-{name}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def close(self) -> None:
        """Stop the threads (what is queued is written first) and close the connections."""
        self._stopping.set()
        if self._threads:
            self._outbox.put(None)
            for thread in self._threads:
                thread.join(timeout=5)
        self.redis.close()

    # --- the predict path: memory only ----------------------------------------------------

    def fingerprints(self, images: Tensor, key: bytes) -> Fingerprints:
        """Sealed fingerprints and digests of ``N×C×H×W`` images (~0.3 ms an image: cheap
        enough for the event loop, where the flag policy runs it after the model)."""
        digests, hashes = [], []
        for pixels, sealed in sealed_fingerprints(images, key, self.config):
            digests.append(hashlib.blake2b(pixels.data, key=key, digest_size=16).digest())
            hashes.append(sealed)
        return Fingerprints(digests, hashes)

    def check(self, client: str, images: Tensor) -> list[QueryAttackCheck | None]:
        """Fingerprint ``images``, match and record them for ``client`` and say how each
        matches. No answers (``None``) until the watch has its sealing key from Redis:
        predict goes on without the watch rather than failing."""
        key = self._key
        if key is None:
            return [None] * len(images)
        found = self.fingerprints(images, key)
        now = self.clock()
        with self._lock:
            matches = [
                self._index.add(client, now, now, digest, hashes.tolist())
                for digest, hashes in zip(found.digests, found.hashes, strict=True)
            ]
            suspected = client in self._index.flags and bool(
                self._index.flags[client].last_flagged > now - self.window_s
            )
        for digest, hashes, count in zip(found.digests, found.hashes, matches, strict=True):
            self._share(_Query(client, now, digest, hashes, count))
        return [QueryAttackCheck(suspected, count, self.window_s) for count in matches]

    def flagged(self) -> list[FlaggedClient]:
        """Clients flagged in the last window, most recently flagged first."""
        with self._lock:
            return self._index.flagged(self.clock())

    def forget(self, client: str) -> bool:
        """Clear a client's flag and history in every process (an operator's "this one is
        fine"); whether this process had anything to clear."""
        with self._lock:
            cleared = self._index.forget(client)
        self._share({b"c": client.encode(), b"forget": b"1"})
        return cleared

    def footprint(self) -> Footprint:
        """What this process holds in memory."""
        with self._lock:
            return self._index.footprint()

    # --- the shared log -------------------------------------------------------------------

    def _share(self, entry: _Query | dict[bytes, bytes]) -> None:
        try:
            self._outbox.put_nowait(entry)
        except queue.Full:  # Redis far behind: this process keeps matching on its own
            logger.warning("query watch: log writer behind, an entry was not shared")

    def flush(self) -> None:
        """Wait until everything this process saw has been written to the log (or failed)."""
        self._outbox.join()

    def sync(self, block_ms: int | None = None) -> bool:
        """Apply the other processes' log entries up to now (the follower calls this in a
        loop; the first call gets the key, and each process's log is read from the start of
        the window when it is first seen). Whether there was any other process to follow.

        The read (which may wait ``block_ms`` for news) holds no lock, so a caller never
        waits behind the follower; entries are applied once, whoever reads them."""
        with self._follow_lock:
            if self._key is None or self._down:
                self._join_log()
            self._find_logs()
            positions = dict(self._positions)
        if not positions:
            return False
        while True:
            replies = cast(
                _StreamReply,
                self.redis.xread(cast(_Positions, positions), count=1000, block=block_ms),
            )
            self._down = False
            most = 0
            with self._follow_lock:
                for stream, entries in replies:
                    for entry_id, fields in entries:
                        known = self._positions.get(stream)
                        if known is not None and _stream_id(entry_id) > _stream_id(known):
                            self._positions[stream] = entry_id
                            self._apply(fields)
                    if entries:
                        positions[stream] = entries[-1][0]
                    most = max(most, len(entries))
            if most < 1000:
                return True
            block_ms = None

    def _join_log(self) -> None:
        """Take the shared sealing key (making it when Redis has none); with a new key,
        history sealed with the old one means nothing: start afresh from the logs."""
        self.redis.set(KEY, os.urandom(32), nx=True)
        stored = cast(bytes | None, self.redis.get(KEY))
        if stored is None:  # deleted between the two calls: next time
            raise RedisError("the sealing key vanished")
        if stored != self._key:
            with self._lock:
                self._index.clear()
            self._positions.clear()
            self._key = stored

    def _find_logs(self) -> None:
        """Follow every other process that wrote within the window, from the window's
        start for one not followed yet; forget those silent for a window."""
        since = self.clock() - self.window_s
        for origin, written in cast(dict[bytes, bytes], self.redis.hgetall(LOGS)).items():
            stream = LOG_PREFIX.encode() + origin
            if origin == self.origin:
                continue
            if float(written) <= since:
                self.redis.hdel(LOGS, origin)
                self._positions.pop(stream, None)
            elif stream not in self._positions:
                self._positions[stream] = f"{max(int(since * 1000), 0)}-0".encode()

    def _apply(self, fields: dict[bytes, bytes]) -> None:
        client = fields[b"c"].decode()
        with self._lock:
            if b"forget" in fields:
                self._index.forget(client)
            else:
                self._index.add(
                    client,
                    self.clock(),
                    float(fields[b"t"]),
                    fields[b"d"],
                    _values(fields[b"h"]),
                    int(fields[b"m"]),
                )

    def _follow(self) -> None:
        while not self._stopping.is_set():
            try:
                if not self.sync(block_ms=250):  # no other process yet
                    self._stopping.wait(0.25)
            except (RedisError, OSError) as error:
                self._failed(error)
                self._stopping.wait(self.retry_after_s)

    def _write(self) -> None:
        while True:
            batch = [self._outbox.get()]
            # Let the request that queued this answer first: written at once, the log
            # took the interpreter from it (+1 ms on predict's p50, 2 cores). Meanwhile
            # more queries queue, written in one round trip.
            if batch[0] is not None:
                self._stopping.wait(self.write_delay_s)
            while True:
                try:
                    batch.append(self._outbox.get_nowait())
                except queue.Empty:
                    break
            entries = [entry for entry in batch if entry is not None]
            try:
                if entries:
                    pipeline = self.redis.pipeline(transaction=False)
                    for entry in entries:
                        fields = entry.fields() if isinstance(entry, _Query) else entry
                        pipeline.xadd(
                            self.log, cast(_Fields, fields), maxlen=self.max_log, approximate=False
                        )
                    now = self.clock()
                    if now - self._announced >= 1:  # once a second is enough for these
                        pipeline.expire(self.log, self.window_s)
                        pipeline.hset(LOGS, self.origin, repr(now))
                        pipeline.expire(LOGS, self.window_s)
                        self._announced = now
                    pipeline.execute()
                    self._down = False
            except (RedisError, OSError) as error:
                self._failed(error)
            finally:
                for _ in batch:
                    self._outbox.task_done()
            if len(entries) < len(batch):  # close() asked to stop
                return

    def _failed(self, error: Exception) -> None:
        if not self._down:  # once per outage, not once per request
            logger.warning(
                "query watch: Redis unreachable (%s); this process matches on its own "
                "until it is back",
                error,
            )
        self._down = True
        self._announced = -math.inf  # list the log again once Redis is back


def _stream_id(entry_id: bytes) -> tuple[int, int]:
    """A stream entry id (``b"<ms>-<seq>"``) in its order."""
    milliseconds, _, sequence = entry_id.partition(b"-")
    return int(milliseconds), int(sequence or 0)


def _values(hashes: bytes) -> list[int]:
    """Sealed hashes (8 bytes each, joined) as integers, the index's keys."""
    return np.frombuffer(hashes, dtype="<u8").tolist()  # type: ignore[no-any-return]


def client_identity(api_key: str | None, address: str | None) -> str:
    """Who a query comes from: its API key when it carries one (a hash of it: keys are
    never stored), else its address (behind a proxy, uvicorn takes it from
    ``X-Forwarded-For`` when the proxy is in ``--forwarded-allow-ips``)."""
    if api_key:
        return "key:" + hashlib.sha256(api_key.encode()).hexdigest()[:16]
    return f"address:{address or 'unknown'}"


__all__ = [
    "Fingerprints",
    "FlaggedClient",
    "Footprint",
    "QueryAttackCheck",
    "QueryWatch",
    "client_identity",
]
