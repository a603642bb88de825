"""The micro-batcher: concurrent requests share batches and get their own answers back."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable

import pytest
import torch

from advguard.api.predictor import ComputeThreads, GuardPool, MicroBatcher


class RecordingGuard:
    """Answers each image with its own first pixel; records batch sizes. The first call
    blocks until released, so that requests queue up behind it as they do under load."""

    def __init__(self) -> None:
        self.batches: list[int] = []
        self.threads: set[str] = set()
        self.entered = threading.Event()
        self.release = threading.Event()

    def predict(self, images: torch.Tensor) -> list[float]:
        if not self.batches:
            self.entered.set()
            self.release.wait(timeout=10)
        self.batches.append(len(images))
        self.threads.add(threading.current_thread().name)
        if (images < 0).any():
            raise ValueError("negative pixels")
        return [float(image.flatten()[0]) for image in images]


def images(count: int, value: float) -> Callable[[], torch.Tensor]:
    """A request's decode step: ``count`` 2×2 images filled with ``value``."""
    return lambda: torch.full((count, 1, 2, 2), value)


def test_requests_that_queue_during_a_batch_form_the_next_one():
    async def scenario() -> tuple[list[list[float]], list[int]]:
        guard = RecordingGuard()
        batcher = MicroBatcher(guard, ComputeThreads(), max_batch=8, max_wait_s=0.0)  # type: ignore[arg-type]
        first = asyncio.create_task(batcher.predict(images(1, 0.5), 1))
        assert await asyncio.to_thread(guard.entered.wait, 10)  # computing, alone
        others = [asyncio.create_task(batcher.predict(images(k, k / 8), k)) for k in (1, 2, 3)]
        while batcher._queue.qsize() < len(others):
            await asyncio.sleep(0)
        guard.release.set()
        answers = [await first] + [await task for task in others]
        batcher.close()
        return answers, guard.batches

    answers, batches = asyncio.run(scenario())
    assert answers == [[0.5], [0.125], [0.25, 0.25], [0.375, 0.375, 0.375]]
    assert batches == [1, 6]  # 1 + 2 + 3 images gathered while the first batch ran


def test_a_failing_batch_fails_each_of_its_requests_and_the_batcher_goes_on():
    async def scenario() -> tuple[BaseException | None, list[float]]:
        guard = RecordingGuard()
        guard.release.set()
        batcher = MicroBatcher(guard, ComputeThreads(), max_batch=8, max_wait_s=0.0)  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="negative") as caught:
            await batcher.predict(images(1, -1.0), 1)
        after = await batcher.predict(images(1, 0.25), 1)
        batcher.close()
        return caught.value, after

    error, after = asyncio.run(scenario())
    assert isinstance(error, ValueError)
    assert after == [0.25]


@pytest.mark.parametrize("batching", [True, False])
def test_every_predict_runs_on_the_one_compute_thread(batching: bool):
    """Torch work from many threads makes libgomp stop spinning (see ComputeThreads), so
    predicts from concurrent requests, batched or not, all run on the same thread."""

    async def scenario() -> tuple[list[list[float]], set[str]]:
        guard = RecordingGuard()
        guard.release.set()
        pool = GuardPool(ComputeThreads(), batching, max_batch=4, max_wait_ms=0.0)
        pool._guards["d"] = guard  # type: ignore[assignment]
        answers = await asyncio.gather(
            *(pool.predict("d", "unused", images(1, k / 16), 1) for k in range(12))
        )
        pool.close()
        return list(answers), guard.threads

    answers, threads = asyncio.run(scenario())
    assert answers == [[k / 16] for k in range(12)]
    assert len(threads) == 1 and next(iter(threads)).startswith("advguard-compute")


def test_compute_threads_start_again_after_close():
    """An app can be started and stopped several times (one lifespan per test client)."""
    compute = ComputeThreads()

    async def name_of_thread() -> str:
        return await compute.run(lambda: threading.current_thread().name)

    first = asyncio.run(name_of_thread())
    compute.close()
    second = asyncio.run(name_of_thread())
    compute.close()
    assert first.startswith("advguard-compute") and second.startswith("advguard-compute")


def test_a_request_whose_images_cannot_be_decoded_fails_alone():
    """Decoding runs with the batch: one bad upload fails its own request, not the batch."""

    def broken() -> torch.Tensor:
        raise ValueError("not an image")

    async def scenario() -> tuple[list[object], list[int]]:
        guard = RecordingGuard()
        batcher = MicroBatcher(guard, ComputeThreads(), max_batch=8, max_wait_s=0.0)  # type: ignore[arg-type]
        first = asyncio.create_task(batcher.predict(images(1, 0.5), 1))
        assert await asyncio.to_thread(guard.entered.wait, 10)
        queued = [
            asyncio.create_task(batcher.predict(decode, 1))
            for decode in (images(1, 0.25), broken, images(1, 0.75))
        ]
        while batcher._queue.qsize() < len(queued):
            await asyncio.sleep(0)
        guard.release.set()
        await first
        answers = await asyncio.gather(*queued, return_exceptions=True)
        batcher.close()
        return list(answers), guard.batches

    answers, batches = asyncio.run(scenario())
    assert answers[0] == [0.25] and answers[2] == [0.75]
    assert isinstance(answers[1], ValueError) and "not an image" in str(answers[1])
    assert batches == [1, 2]  # the two good images of the second batch, together
