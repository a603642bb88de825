"""Serving guards in the API process, with micro-batching of concurrent predict requests.

Requests wait at most ``max_wait_ms`` (or until ``max_batch`` images are waiting) and run
as one batch on the compute thread, so the event loop keeps accepting requests while torch
computes, and concurrent clients share one forward/backward pass instead of each paying
for their own.
"""

from __future__ import annotations

import asyncio
import functools
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import ParamSpec, TypeVar

import torch
from torch import Tensor

from advguard.guard import Guard, Verdict

P = ParamSpec("P")
R = TypeVar("R")


class ComputeThreads:
    """The threads that run the API's torch work (guard loading, decoding, predict,
    single-image attacks): one by default, always the same ones.

    Each OS thread that enters a parallel torch op gets its own OpenMP team, and once the
    process has more OpenMP threads than cores, libgomp stops spinning between ops and puts
    its threads to sleep after each one (its "throttled" spin count). A predict is hundreds
    of small ops, so every op then pays a wake-up: ``Guard.predict`` of one image took
    25–27 ms from a shared thread pool against 13–16 ms from one fixed thread (2 cores).
    """

    def __init__(self, count: int = 1) -> None:
        self.count = count
        self._executor: ThreadPoolExecutor | None = None

    async def run(self, function: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
        """``function(*args, **kwargs)`` on a compute thread, awaited."""
        if self._executor is None:  # first use, or first since close(): the app restarted
            self._executor = ThreadPoolExecutor(self.count, thread_name_prefix="advguard-compute")
        call = functools.partial(function, *args, **kwargs)
        return await asyncio.get_running_loop().run_in_executor(self._executor, call)

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None


Decode = Callable[[], Tensor]
"""Turns one request's uploads into ``N×C×H×W`` images; runs on the compute thread with the
batch, so a request costs one thread hop, and may raise (for example an HTTP 415) for its
own request only."""


@dataclass
class _Pending:
    decode: Decode
    count: int
    """Images the request holds (the uploads, counted before decoding)."""
    future: asyncio.Future[list[Verdict]]


@dataclass
class MicroBatcher:
    """Gathers concurrent ``predict`` calls for one guard into batches."""

    guard: Guard
    compute: ComputeThreads
    max_batch: int
    max_wait_s: float
    runners: int = 1
    """Batches in flight at once (a second one gathers while the first computes)."""
    _queue: asyncio.Queue[_Pending] = field(default_factory=asyncio.Queue)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    async def predict(self, decode: Decode, count: int) -> list[Verdict]:
        """Verdicts for the ``count`` images that ``decode()`` gives, computed in a batch
        with whatever other requests are waiting."""
        self._tasks = [task for task in self._tasks if not task.done()]
        while len(self._tasks) < self.runners:
            self._tasks.append(asyncio.create_task(self._run()))
        pending = _Pending(decode, count, asyncio.get_running_loop().create_future())
        await self._queue.put(pending)
        return await pending.future

    async def _gather(self) -> list[_Pending]:
        batch = [await self._queue.get()]
        count = batch[0].count
        deadline = asyncio.get_running_loop().time() + self.max_wait_s
        while count < self.max_batch:
            try:
                if self._queue.empty():
                    remaining = deadline - asyncio.get_running_loop().time()
                    if remaining <= 0:
                        break
                    item = await asyncio.wait_for(self._queue.get(), remaining)
                else:
                    item = self._queue.get_nowait()
            except TimeoutError:
                break
            batch.append(item)
            count += item.count
        return batch

    def _decode_and_predict(self, batch: list[_Pending]) -> list[list[Verdict] | BaseException]:
        """On the compute thread: each request's verdicts, or the error that its own
        decoding raised (the other requests of the batch go on)."""
        decoded: list[Tensor | BaseException] = []
        for pending in batch:
            try:
                decoded.append(pending.decode())
            except Exception as error:
                decoded.append(error)
        images = [item for item in decoded if isinstance(item, Tensor)]
        verdicts = self.guard.predict(torch.cat(images)) if images else []
        answers: list[list[Verdict] | BaseException] = []
        start = 0
        for item in decoded:
            if isinstance(item, BaseException):
                answers.append(item)
                continue
            answers.append(verdicts[start : start + len(item)])
            start += len(item)
        return answers

    async def _run(self) -> None:
        while True:
            batch = await self._gather()
            try:
                answers = await self.compute.run(self._decode_and_predict, batch)
            except Exception as error:  # hand the failure to every waiting request
                answers = [error] * len(batch)
            for pending, answer in zip(batch, answers, strict=True):
                if pending.future.done():
                    continue
                if isinstance(answer, BaseException):
                    pending.future.set_exception(answer)
                else:
                    pending.future.set_result(answer)

    def close(self) -> None:
        for task in self._tasks:
            task.cancel()


@dataclass(frozen=True)
class ServedDetector:
    """What predict needs of a detector's records: where its guard is and its input shape."""

    id: str
    path: str
    threshold: float
    image_size: int
    channels: int


class GuardPool:
    """Loaded guards by detector id, each with its own batcher (or none when batching is
    off: each request then runs its own forward pass), all computing on ``compute``, with
    as many batches in flight as it has threads."""

    def __init__(
        self, compute: ComputeThreads, batching: bool, max_batch: int, max_wait_ms: float
    ) -> None:
        self.compute = compute
        self.batching = batching
        self.max_batch = max_batch
        self.max_wait_s = max_wait_ms / 1000
        self._guards: dict[str, Guard] = {}
        self.records: dict[str, ServedDetector] = {}
        """Detector records by id, kept so that a predict needs no database trip."""
        self._batchers: dict[str, MicroBatcher] = {}
        self._lock = threading.Lock()

    def guard(self, detector_id: str, path: str) -> Guard:
        """The guard of a detector, loaded once."""
        with self._lock:
            if detector_id not in self._guards:
                self._guards[detector_id] = Guard.load(path, serving=True)
            return self._guards[detector_id]

    async def predict(
        self, detector_id: str, path: str, decode: Decode, count: int
    ) -> list[Verdict]:
        """Verdicts of ``detector_id``'s guard for the ``count`` images that ``decode()``
        gives; decoding and predict share one hop to the compute thread."""
        guard = self._guards.get(detector_id)  # loaded already: no thread hop on the hot path
        if guard is None:
            guard = await self.compute.run(self.guard, detector_id, path)
        if not self.batching:
            loaded = guard
            return await self.compute.run(lambda: loaded.predict(decode()))
        if detector_id not in self._batchers:
            self._batchers[detector_id] = MicroBatcher(
                guard, self.compute, self.max_batch, self.max_wait_s, self.compute.count
            )
        return await self._batchers[detector_id].predict(decode, count)

    def forget(self, detector_id: str) -> None:
        """Drop a deleted detector's guard."""
        with self._lock:
            self._guards.pop(detector_id, None)
        self.records.pop(detector_id, None)
        batcher = self._batchers.pop(detector_id, None)
        if batcher is not None:
            batcher.close()

    def close(self) -> None:
        for batcher in self._batchers.values():
            batcher.close()
        self.compute.close()
