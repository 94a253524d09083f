"""DynamicBatcher: a lone request's forward pass runs on its own worker thread, anything else is batched on the
batcher's thread, and two passes never run at once."""

from __future__ import annotations

import asyncio
import threading

import numpy as np
import pytest

from app.inference.batcher import DynamicBatcher


class RecordingModel:
    """Stands in for a ServingModel: records each pass's size and thread and how many passes overlapped."""

    def __init__(self, gate: threading.Event | None = None) -> None:
        self.gate = gate
        self.entered = threading.Event()
        self.passes: list[tuple[int, str]] = []
        self.inside = self.most_at_once = 0
        self._lock = threading.Lock()

    def run(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        with self._lock:
            self.inside += 1
            self.most_at_once = max(self.most_at_once, self.inside)
        self.entered.set()
        if self.gate is not None:
            assert self.gate.wait(10), "the test never opened the gate"
        with self._lock:
            self.inside -= 1
            self.passes.append((len(x), threading.current_thread().name))
        n = len(x)
        p = x.reshape(n, -1)[:, 0]  # each row's answer is made from its own input: cross-talk would show
        return np.stack([1 - p, p], axis=1), np.broadcast_to(p[:, None, None, None], (n, 2, 7, 7)).copy()


def _image(value: float) -> np.ndarray:
    return np.full((1, 8, 8), value, dtype=np.float32)


def _with_batcher(body):
    async def main():
        batcher = DynamicBatcher(max_batch_size=8, max_wait_ms=50.0, queue_size=8)
        batcher.start()
        try:
            return await body(batcher)
        finally:
            await batcher.stop()

    return asyncio.run(main())


def test_a_lone_request_runs_its_forward_pass_on_its_own_thread():
    model = RecordingModel()

    async def body(batcher: DynamicBatcher):
        batcher.arriving = 1  # this request, still in its worker thread
        return await asyncio.to_thread(lambda: (batcher.run_alone(_image(0.3), model),
                                                threading.current_thread().name))

    result, thread = _with_batcher(body)
    assert result is not None and result.batch_size == 1
    assert result.probabilities == pytest.approx([0.7, 0.3]) and result.cams.shape == (2, 7, 7)
    assert model.passes == [(1, thread)] and not thread.startswith("cxr-infer")


@pytest.mark.parametrize("situation", ["another request on its way", "a request queued", "not started"])
def test_a_request_that_is_not_alone_is_left_to_the_batcher(situation):
    model = RecordingModel()

    async def body(batcher: DynamicBatcher):
        if situation == "another request on its way":
            batcher.arriving = 2
        elif situation == "a request queued":
            batcher.arriving = 1
            batcher._carry = object()  # a batch item held back for the next batch counts as queued
        else:
            await batcher.stop()
        return await asyncio.to_thread(batcher.run_alone, _image(0.3), model)

    assert _with_batcher(body) is None and model.passes == []


class WatchedLock:
    """A lock that says when someone starts waiting for it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.waited = threading.Event()

    def acquire(self, blocking: bool = True) -> bool:
        if self._lock.acquire(blocking=False):
            return True
        if not blocking:
            return False
        self.waited.set()
        return self._lock.acquire()

    def release(self) -> None:
        self._lock.release()

    __enter__ = acquire

    def __exit__(self, *exc: object) -> None:
        self.release()


def test_a_pass_on_a_request_thread_and_a_batch_never_run_at_once():
    gate = threading.Event()
    model = RecordingModel(gate)

    async def body(batcher: DynamicBatcher):
        batcher._running = lock = WatchedLock()
        batcher.arriving = 1
        alone = asyncio.ensure_future(asyncio.to_thread(batcher.run_alone, _image(0.2), model))
        assert await asyncio.to_thread(model.entered.wait, 10)  # the lone pass is inside the model now
        batched = asyncio.ensure_future(asyncio.gather(*[batcher.submit(_image(v), model) for v in (0.6, 0.9)]))
        assert await asyncio.to_thread(lock.waited.wait, 10)  # the batch is ready and waits for the lone pass
        gate.set()
        return await alone, await batched

    alone, batched = _with_batcher(body)
    assert model.most_at_once == 1
    assert alone.probabilities[1] == pytest.approx(0.2)
    assert [r.probabilities[1] for r in batched] == pytest.approx([0.6, 0.9])
    assert sorted(size for size, _ in model.passes) == [1, 2]  # the two queued ones shared a pass
