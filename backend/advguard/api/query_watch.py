"""Noticing black-box attacks from each client's stream of predict queries, state in Redis.

Every image a client sends to predict is fingerprinted
(:mod:`advguard.detection.fingerprint`) and compared with that client's queries of the last
``window`` seconds: its *matches* are how many of them it nearly duplicates (they share at
least ``match_hashes`` of its hashes). A query with ``flag_at`` matches or more flags the
client for ``window`` seconds; the policy then flags verdicts or refuses predict (429).
An identical image sent again is one query: it is neither recorded twice nor a match.

What Redis holds, all under ``advguard:qw:`` (one round trip per request, a Lua script):

- ``c:<client>:<bucket>``: a hash per client and half-window bucket, sealed fingerprint
  hash → how many of the client's queries in that bucket had it, plus one digest per image
  (to know a re-sent one, a keyed BLAKE2b) and a query counter. Never pixels: every field
  is a hash of quantised pixel runs, mixed with the secret key (8 bytes). At most
  ``max_hashes`` fields per bucket, and the key expires a window after its bucket ends.
- ``clients``: the tracked clients by last query; past ``max_clients`` the oldest client's
  state is dropped, so a flood of distinct clients cannot grow Redis without bound.
- ``flagged`` and ``flag:<client>``: clients flagged in the last window, for the read
  endpoint, bounded the same way.
- ``key``: the random sealing key, made once by whichever API process comes first, so
  that every replica's fingerprints agree and a restart loses nothing.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import redis
from redis.exceptions import RedisError
from torch import Tensor

from advguard.detection.fingerprint import (
    DEFAULT_FINGERPRINT,
    FingerprintConfig,
    fingerprint,
    seal,
    to_pixels,
)

logger = logging.getLogger("advguard.api.query_watch")

PREFIX = "advguard:qw:"
BUCKETS = 2
"""The window is kept as this many buckets; a query is compared with the buckets of the
last window (so a match can be between ½ and one window old before it goes). Each bucket
costs predict one HMGET of ~50 fields in Redis (~45 µs on 2 cores)."""

Policy = Literal["flag", "refuse"]

# KEYS: none (the client's key names depend on the buckets; one Redis, not a cluster).
# ARGV: prefix, client, now, bucket, window, ttl, match_hashes, flag_at, max_hashes,
#       max_clients, images, then per image: its digest and its hashes joined.
# Returns: suspected (0/1), then per image: matches, repeated (0/1).
_OBSERVE = """
local prefix, client = ARGV[1], ARGV[2]
local now, bucket = tonumber(ARGV[3]), tonumber(ARGV[4])
local window, ttl = tonumber(ARGV[5]), tonumber(ARGV[6])
local need, flag_at = tonumber(ARGV[7]), tonumber(ARGV[8])
local max_hashes, max_clients = tonumber(ARGV[9]), tonumber(ARGV[10])
local images = tonumber(ARGV[11])
local buckets = {}
for b = 0, BUCKETS - 1 do buckets[b + 1] = prefix .. 'c:' .. client .. ':' .. (bucket - b) end
local current = buckets[1]
local flag_key = prefix .. 'flag:' .. client
local replies = {0}
local at = 12
for i = 1, images do
  local digest = '=' .. ARGV[at]
  local packed = ARGV[at + 1]  -- the image's hashes, 8 bytes each, in one argument
  local count = #packed / 8
  at = at + 2
  -- one HMGET per bucket: the image's hashes, then its digest
  local fields = {}
  for j = 1, count do fields[j] = string.sub(packed, 8 * j - 7, 8 * j) end
  fields[count + 1] = digest
  local totals, current_values, repeated = {}, nil, 0
  for j = 1, count do totals[j] = 0 end
  for b = 1, BUCKETS do
    local values = redis.call('HMGET', buckets[b], unpack(fields))
    if b == 1 then current_values = values end
    if values[count + 1] then repeated = 1 end
    for j = 1, count do
      if values[j] then totals[j] = totals[j] + tonumber(values[j]) end
    end
  end
  local matches = 0
  if count >= need then
    table.sort(totals)  -- ascending (the default order: a Lua comparator costs ~40 µs)
    -- a re-sent image finds its own earlier copy in every one of its hashes
    matches = math.max(totals[count - need + 1] - repeated, 0)
  end
  if repeated == 0 then
    -- one HSET of every new count; new fields only while there is room within max_hashes
    local size = redis.call('HLEN', current)
    if size == 0 then
      -- one value over hash-max-listpack-value keeps the hash a hash table: as a listpack
      -- (up to 128–512 fields) every HMGET and HSET scans it, ~0.5 ms per query
      redis.call('HSET', current, '!', string.rep('-', 65))
    end
    local room = size + count + 3 <= max_hashes
    local updates = {'#', tonumber(redis.call('HGET', current, '#') or '0') + 1}
    for j = 1, count do
      local known = current_values[j]
      if known or room then
        updates[#updates + 1] = fields[j]
        updates[#updates + 1] = (tonumber(known) or 0) + 1
      end
    end
    if room then
      updates[#updates + 1] = digest
      updates[#updates + 1] = 1
    end
    redis.call('HSET', current, unpack(updates))
    redis.call('EXPIRE', current, ttl)
  end
  if matches >= flag_at then
    redis.call('ZADD', prefix .. 'flagged', now, client)
    redis.call('HSETNX', flag_key, 'first', now)
    redis.call('HSET', flag_key, 'last', now)
    local best = tonumber(redis.call('HGET', flag_key, 'matches') or '0')
    if matches > best then redis.call('HSET', flag_key, 'matches', matches) end
  end
  replies[#replies + 1] = matches
  replies[#replies + 1] = repeated
end
local flagged_at = redis.call('ZSCORE', prefix .. 'flagged', client)
if flagged_at and tonumber(flagged_at) > now - window then
  replies[1] = 1
  local queries = 0
  for b = 1, BUCKETS do queries = queries + tonumber(redis.call('HGET', buckets[b], '#') or '0') end
  redis.call('HSET', flag_key, 'queries', queries)
  redis.call('EXPIRE', flag_key, ttl)
end
-- bounded state: forget the least recently seen clients past max_clients
redis.call('ZADD', prefix .. 'clients', now, client)
local excess = redis.call('ZCARD', prefix .. 'clients') - max_clients
if excess > 0 then
  local dropped = redis.call('ZPOPMIN', prefix .. 'clients', excess)
  for k = 1, #dropped, 2 do
    for b = 0, BUCKETS - 1 do
      redis.call('DEL', prefix .. 'c:' .. dropped[k] .. ':' .. (bucket - b))
    end
  end
end
redis.call('ZREMRANGEBYSCORE', prefix .. 'flagged', '-inf', now - window)
excess = redis.call('ZCARD', prefix .. 'flagged') - max_clients
if excess > 0 then
  local dropped = redis.call('ZPOPMIN', prefix .. 'flagged', excess)
  for k = 1, #dropped, 2 do redis.call('DEL', prefix .. 'flag:' .. dropped[k]) end
end
return replies
""".replace("BUCKETS", str(BUCKETS))


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
    hashes: list[bytes]
    """Each image's sealed fingerprint hashes, 8 bytes each, joined."""


class QueryWatch:
    """Per-client query fingerprints in Redis (see the module docstring)."""

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
        config: FingerprintConfig = DEFAULT_FINGERPRINT,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not 1 <= match_hashes <= config.keep:
            raise ValueError(f"match_hashes must be within 1..{config.keep}, got {match_hashes}")
        # Synchronous, on predict's compute thread before the model runs: the same round
        # trip from the event loop or another thread, overlapping the model, cost predict's
        # p50 2–3 ms on 2 cores (they took CPU from torch's threads), this ~1 ms less.
        self.redis = redis.Redis.from_url(redis_url, socket_timeout=1.0, socket_connect_timeout=1.0)
        self.window_s = window_s
        self.policy = policy
        self.flag_at = flag_at
        self.match_hashes = match_hashes
        self.max_hashes = max_hashes
        self.max_clients = max_clients
        self.config = config
        self.clock = clock
        self._key: bytes | None = None
        self._script = self.redis.register_script(_OBSERVE)
        self.retry_after_s = 5.0
        """After Redis failed, predict skips the watch this long before trying again (a
        refused connection per request would cost every request, and log each time)."""
        self._down_until = 0.0

    def key(self) -> bytes:
        """The sealing key shared by every API process (made on first use)."""
        if self._key is None:
            self.redis.set(PREFIX + "key", os.urandom(32), nx=True)
            stored = self.redis.get(PREFIX + "key")
            if stored is None:  # deleted between the two calls: try once more
                return self.key()
            self._key = stored if isinstance(stored, bytes) else str(stored).encode()
        return self._key

    def fingerprints(self, images: Tensor, key: bytes) -> Fingerprints:
        """Sealed fingerprints of ``N×C×H×W`` images (CPU work: run it off the event loop)."""
        digests, hashes = [], []
        for image in images:
            pixels = to_pixels(image)
            digests.append(hashlib.blake2b(pixels.tobytes(), key=key, digest_size=16).digest())
            hashes.append(seal(fingerprint(pixels, self.config), key))
        return Fingerprints(digests, hashes)

    def observe(self, client: str, fingerprints: Fingerprints) -> list[QueryAttackCheck]:
        """Record one request's images for ``client`` and say, per image, how it matches
        the client's recent queries."""
        now = self.clock()
        span = self.window_s / BUCKETS
        arguments: list[bytes | str | int | float] = [
            PREFIX,
            client,
            now,
            int(now // span),
            self.window_s,
            self.window_s + int(span) + 1,
            self.match_hashes,
            self.flag_at,
            self.max_hashes,
            self.max_clients,
            len(fingerprints.digests),
        ]
        for digest, hashes in zip(fingerprints.digests, fingerprints.hashes, strict=True):
            arguments += [digest, hashes]
        replies = self._script(args=arguments)
        suspected = bool(replies[0])
        return [
            QueryAttackCheck(suspected, int(matches), self.window_s) for matches in replies[1::2]
        ]

    def check(self, client: str, images: Tensor) -> list[QueryAttackCheck | None]:
        """Fingerprint ``images``, record them for ``client`` and say how each matches; no
        answers (``None``) while Redis is unreachable, since predict goes on without the
        watch rather than failing."""
        if not self.available():
            return [None] * len(images)
        try:
            return list(self.observe(client, self.fingerprints(images, self.key())))
        except (RedisError, OSError) as error:
            self.failed(error)
            return [None] * len(images)

    def flagged(self) -> list[FlaggedClient]:
        """Clients flagged in the last window, most recently flagged first."""
        since = self.clock() - self.window_s
        names = self.redis.zrevrangebyscore(PREFIX + "flagged", "+inf", f"({since}")
        clients = []
        for raw in names:
            name = raw.decode() if isinstance(raw, bytes) else str(raw)
            info = self.redis.hgetall(PREFIX + "flag:" + name)
            if not info:
                continue
            clients.append(
                FlaggedClient(
                    client=name,
                    first_flagged=float(info[b"first"]),
                    last_flagged=float(info[b"last"]),
                    matches=int(info.get(b"matches", b"0")),
                    queries=int(info.get(b"queries", b"0")),
                )
            )
        return clients

    def forget(self, client: str) -> bool:
        """Clear a client's flag and history (an operator's "this one is fine"); whether
        there was anything to clear."""
        bucket = int(self.clock() // (self.window_s / BUCKETS))
        keys = [PREFIX + f"c:{client}:{bucket - b}" for b in range(BUCKETS)]
        removed = int(self.redis.zrem(PREFIX + "flagged", client))
        removed += int(self.redis.delete(PREFIX + "flag:" + client, *keys))
        self.redis.zrem(PREFIX + "clients", client)
        return bool(removed)

    def available(self) -> bool:
        """False for ``retry_after_s`` after Redis last failed."""
        return time.monotonic() >= self._down_until

    def failed(self, error: Exception) -> None:
        """Redis failed: warn, and leave it alone for ``retry_after_s``."""
        logger.warning(
            "query watch unavailable (%s); predict goes on without it for %.0f s",
            error,
            self.retry_after_s,
        )
        self._down_until = time.monotonic() + self.retry_after_s

    def close(self) -> None:
        self.redis.close()


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
    "QueryAttackCheck",
    "QueryWatch",
    "client_identity",
]
