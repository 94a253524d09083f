"""Results out to the PACS: the delivery loop and its whole retry policy, in one place.

Each due result's instances (SC + SR, or the SR alone when not evaluated) go out in one STOW-RS
request through ``PacsClient``. On failure the next attempt waits ``retry_delay``: exponential
backoff from CXR_PACS_RETRY_BASE_S doubling up to CXR_PACS_RETRY_MAX_S, ±20 % jitter, four times
longer when the PACS refused the instances (4xx other than 408/429: someone has to fix the
configuration, but a result is never dropped). After CXR_PACS_MAX_ATTEMPTS the result is
``failed`` and stays on disk until ``POST /dicomweb/results/{id}/deliver`` asks again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time

from starlette.concurrency import run_in_threadpool

from app.audit.trail import AuditTrail
from app.core.config import Settings
from app.core.metrics import Metrics
from app.pacs.client import PacsClient
from app.pacs.results import DeliveryState, ResultState, ResultStore

log = logging.getLogger(__name__)
REFUSED_BACKOFF_FACTOR = 4


def retry_delay(settings: Settings, attempts: int, *, retryable: bool = True) -> float:
    """Seconds before attempt ``attempts + 1``."""
    base = min(settings.pacs_retry_max_s, settings.pacs_retry_base_s * 2 ** max(0, attempts - 1))
    return base * random.uniform(0.8, 1.2) * (1 if retryable else REFUSED_BACKOFF_FACTOR)


class Delivery:
    def __init__(self, settings: Settings, store: ResultStore, metrics: Metrics, pacs: PacsClient, *,
                 audit: AuditTrail | None = None) -> None:
        self.settings = settings
        self.store = store
        self.metrics = metrics
        self.pacs = pacs
        self.audit = audit  # delivered / not delivered (after the last attempt) are recorded
        self._wake = asyncio.Event()

    @property
    def configured(self) -> bool:
        return self.pacs.configured

    def wake(self) -> None:
        """A result became due (new, or asked to be sent again)."""
        self._wake.set()

    def retry(self, result_id: str) -> None:
        self.store.update(result_id, delivery=DeliveryState.pending.value, attempts=0, next_attempt_at=None,
                          delivery_error=None)
        self.wake()

    async def run(self) -> None:
        while True:
            for row in await run_in_threadpool(self.store.due_deliveries, time.time()):
                await self.deliver(row)
            next_due = await run_in_threadpool(self.store.next_due_at)
            timeout = 60.0 if next_due is None else max(0.05, next_due - time.time())
            self._wake.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=min(timeout, 60.0))

    def _audit(self, result_id: str, delivered: bool, attempts: int, detail: str | None) -> None:
        if self.audit is not None:
            self.audit.delivery(result_id, delivered=delivered, attempts=attempts, detail=detail)

    async def deliver(self, row: dict) -> None:
        result_id = row["id"]
        try:
            payloads = await run_in_threadpool(self.store.load_outputs, result_id,
                                               with_sc=row["state"] == ResultState.done)
        except OSError:
            self.store.update(result_id, delivery="failed", delivery_error="result files are missing from disk")
            self.metrics.pacs_deliveries.labels("failed").inc()
            self._audit(result_id, False, int(row["attempts"]), "result files are missing from disk")
            return
        outcome = await self.pacs.send(payloads)
        attempts = int(row["attempts"]) + 1
        if outcome.ok:
            self.store.update(result_id, delivery="delivered", attempts=attempts, delivered_at=time.time(),
                              delivery_error=None, next_attempt_at=None)
            self.metrics.pacs_deliveries.labels("delivered").inc()
            self._audit(result_id, True, attempts, None)
            log.info("PACS: result %s delivered (attempt %d)", result_id, attempts)
            return
        if attempts >= self.settings.pacs_max_attempts:
            self.store.update(result_id, delivery="failed", attempts=attempts, delivery_error=outcome.detail,
                              next_attempt_at=None)
            self.metrics.pacs_deliveries.labels("failed").inc()
            self._audit(result_id, False, attempts, outcome.detail)
            log.error("PACS: result %s NOT delivered after %d attempts: %s (POST /dicomweb/results/%s/deliver "
                      "retries it)", result_id, attempts, outcome.detail, result_id)
            return
        delay = retry_delay(self.settings, attempts, retryable=outcome.retryable)
        self.store.update(result_id, attempts=attempts, delivery_error=outcome.detail,
                          next_attempt_at=time.time() + delay)
        self.metrics.pacs_deliveries.labels("retry").inc()
        log.warning("PACS: result %s not delivered (%s); attempt %d of %d, next in %.1f s", result_id, outcome.detail,
                    attempts, self.settings.pacs_max_attempts, delay)
