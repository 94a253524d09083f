"""Dynamic batching: concurrent requests share one forward pass, run off the event loop.

A bounded asyncio queue holds (tensor, model, future). One worker task takes the first
item and everything already queued; it waits up to ``max_wait_ms`` for more only while
other requests are still being decoded or preprocessed (so a lone request never waits), runs the batch
on a single dedicated thread, and resolves each request's future with its own row.
Items preprocessed for a different model (during a swap) go into the next batch.
A lone request (nothing queued, running or on its way) runs its pass on its own worker thread instead
(``run_alone``: two thread hops less, 0.5-1 ms of a 1-client answer); one lock keeps every pass, lone or
batched, one at a time.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from app.core.aio import cancel_and_wait
from app.errors import NotReady, QueueFull
from app.core.metrics import Metrics
from app.inference.serving import ServingModel

log = logging.getLogger(__name__)


@dataclass
class _Item:
    x: np.ndarray  # (1, S, S) float32
    model: ServingModel
    future: asyncio.Future = field(repr=False)


@dataclass(frozen=True)
class BatchResult:
    probabilities: np.ndarray  # (2,)
    cams: np.ndarray  # (2, h, w)
    batch_size: int


class DynamicBatcher:
    def __init__(self, *, max_batch_size: int, max_wait_ms: float, queue_size: int,
                 metrics: Metrics | None = None) -> None:
        self.max_batch_size = max_batch_size
        self.max_wait = max_wait_ms / 1000.0
        self.metrics = metrics
        self.queue_size = queue_size
        # Queue, executor and worker belong to one event loop: made in start(), dropped in stop().
        self._queue: asyncio.Queue[_Item] | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._task: asyncio.Task | None = None
        self._carry: _Item | None = None
        self.arriving = 0  # requests still decoding or preprocessing: worth waiting for (event-loop thread only)
        self._running = threading.Lock()  # one forward pass at a time, on whichever thread runs it

    @property
    def depth(self) -> int:
        return (self._queue.qsize() if self._queue else 0) + (1 if self._carry else 0)

    def start(self) -> None:
        if self._task is not None:
            return
        self._queue = asyncio.Queue(maxsize=self.queue_size)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="cxr-infer")
        self._task = asyncio.get_running_loop().create_task(self._worker(), name="cxr-batcher")
        self._task.add_done_callback(self._on_worker_exit)

    def _on_worker_exit(self, task: asyncio.Task) -> None:
        """Never leave a request waiting on a worker that is gone."""
        if not task.cancelled() and task.exception() is not None:
            log.error("batch worker died: %r", task.exception())
        pending = [self._carry] if self._carry else []
        while self._queue is not None and not self._queue.empty():
            pending.append(self._queue.get_nowait())
        self._carry = None
        for item in pending:
            if not item.future.done():
                item.future.set_exception(NotReady("inference worker stopped; retry shortly"))
        self._task = None

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        if self._executor is not None:
            self._executor.shutdown(wait=True)
        self._executor, self._queue, self._task = None, None, None

    async def submit(self, x: np.ndarray, model: ServingModel) -> BatchResult:
        if self._task is None or self._queue is None:
            raise NotReady("inference worker is not running")
        fut: asyncio.Future = asyncio.get_running_loop().create_future()
        try:
            self._queue.put_nowait(_Item(x, model, fut))
        except asyncio.QueueFull:
            raise QueueFull("inference queue is full; retry shortly") from None
        if self.metrics:
            self.metrics.queue_depth.set(self.depth)
        return await fut

    def run_alone(self, x: np.ndarray, model: ServingModel) -> BatchResult | None:
        """From a worker thread: ``x``'s forward pass run here, now, when nothing is queued, running or on its
        way besides this request (a lone request skips the two thread hops through the event loop and the
        batcher's thread); None otherwise, and ``submit`` it. Reads the loop's counters without its lock:
        a request that arrives meanwhile waits for this one pass, as it would for a batch."""
        if self._task is None or self.depth or self.arriving > 1 or not self._running.acquire(blocking=False):
            return None
        try:
            t0 = time.perf_counter()
            probs, cams = model.run(x[None])
        except Exception:
            log.exception("inference failed for a batch of 1")
            raise
        finally:
            self._running.release()
        self._observe(1, time.perf_counter() - t0)
        return BatchResult(probs[0], cams[0], 1)

    def _run_batch(self, model: ServingModel, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        with self._running:
            return model.run(x)

    def _observe(self, size: int, seconds: float) -> None:
        if self.metrics:
            self.metrics.batch_size.observe(size)
            self.metrics.stage_seconds.labels("forward").observe(seconds)

    async def _next_batch(self) -> list[_Item]:
        assert self._queue is not None
        first = self._carry or await self._queue.get()
        self._carry = None
        batch = [first]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.max_wait
        while len(batch) < self.max_batch_size:
            try:
                if self._queue.empty():
                    remaining = deadline - loop.time()
                    if remaining <= 0 or self.arriving == 0:  # nobody else is coming: do not wait
                        break
                    item = await asyncio.wait_for(self._queue.get(), remaining)
                else:
                    item = self._queue.get_nowait()
            except (asyncio.TimeoutError, asyncio.QueueEmpty):
                break
            if item.model is not first.model:
                self._carry = item  # preprocessed for another model version: next batch
                break
            batch.append(item)
        return batch

    async def _worker(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = await self._next_batch()
            live = [it for it in batch if not it.future.done()]  # a client may have gone away
            if self.metrics:
                self.metrics.queue_depth.set(self.depth)
            if not live:
                continue
            model = live[0].model
            x = np.stack([it.x for it in live])
            t0 = time.perf_counter()
            try:
                probs, cams = await loop.run_in_executor(self._executor, self._run_batch, model, x)
            except Exception as exc:  # a failing batch must fail its requests, never the worker
                log.exception("inference failed for a batch of %d", len(live))
                for it in live:
                    if not it.future.done():
                        it.future.set_exception(exc)
                continue
            self._observe(len(live), time.perf_counter() - t0)
            for i, it in enumerate(live):
                if not it.future.done():
                    it.future.set_result(BatchResult(probs[i], cams[i], len(live)))
