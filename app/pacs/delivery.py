"""Results out to the PACS and the FHIR server: the delivery loop and its whole retry policy, in one place.

One ``Delivery`` per target. PACS: each due result's objects (SR, PM, SC as configured, or the SR
alone when not evaluated) go out in one STOW-RS request through ``PacsClient``; FHIR: its
transaction Bundle goes to the FHIR server through ``FhirClient``. Both targets keep their own state,
attempts and next attempt on the result's row and follow the same policy.

On failure the next attempt waits ``retry_delay``: exponential
backoff from CXR_PACS_RETRY_BASE_S doubling up to CXR_PACS_RETRY_MAX_S, ±20 % jitter, four times
longer when the PACS refused the instances (4xx other than 408/429: someone has to fix the
configuration, but a result is never dropped). After CXR_PACS_MAX_ATTEMPTS the result is
``failed`` for that target and stays on disk until ``POST /dicomweb/results/{id}/deliver`` asks again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from functools import partial
from typing import Protocol

from starlette.concurrency import run_in_threadpool

from app.audit.trail import AuditTrail
from app.core.config import Settings
from app.core.metrics import Metrics
from app.pacs.client import DeliveryOutcome
from app.pacs.results import COLUMNS, DeliveryState, ResultStore, Target

log = logging.getLogger(__name__)
REFUSED_BACKOFF_FACTOR = 4


def retry_delay(settings: Settings, attempts: int, *, retryable: bool = True) -> float:
    """Seconds before attempt ``attempts + 1``."""
    base = min(settings.pacs_retry_max_s, settings.pacs_retry_base_s * 2 ** max(0, attempts - 1))
    return base * random.uniform(0.8, 1.2) * (1 if retryable else REFUSED_BACKOFF_FACTOR)


class Client(Protocol):
    @property
    def configured(self) -> bool: ...

    async def send(self, payloads: list[bytes]) -> DeliveryOutcome: ...

    async def aclose(self) -> None: ...


class Delivery:
    def __init__(self, settings: Settings, store: ResultStore, metrics: Metrics, client: Client, *,
                 target: Target = Target.pacs, audit: AuditTrail | None = None) -> None:
        self.settings = settings
        self.store = store
        self.metrics = metrics
        self.client = client
        self.target = target
        self.columns = COLUMNS[target]
        self.audit = audit  # delivered / not delivered (after the last attempt) are recorded
        self._wake = asyncio.Event()

    @property
    def configured(self) -> bool:
        return self.client.configured

    def initial_state(self) -> str:
        """The state a new result starts in for this target."""
        return (DeliveryState.pending if self.configured else DeliveryState.not_configured).value

    def _update(self, result_id: str, **fields: object) -> None:
        """Fields named by their PACS column (state, attempts, ...), written to this target's columns."""
        names = {"delivery": self.columns.state, "attempts": self.columns.attempts,
                 "next_attempt_at": self.columns.next_attempt_at, "delivery_error": self.columns.error,
                 "delivered_at": self.columns.delivered_at}
        self.store.update(result_id, **{names[k]: v for k, v in fields.items()})

    async def _set(self, result_id: str, **fields: object) -> None:
        """``_update`` off the event loop (a database round trip)."""
        await run_in_threadpool(partial(self._update, result_id, **fields))

    def wake(self) -> None:
        """A result became due (new, or asked to be sent again)."""
        self._wake.set()

    def retry(self, result_id: str) -> None:
        self._update(result_id, delivery=DeliveryState.pending.value, attempts=0, next_attempt_at=None,
                     delivery_error=None)
        self.wake()

    async def run(self) -> None:
        while True:
            for row in await run_in_threadpool(self.store.due_deliveries, time.time(), self.target):
                lease = self.settings.pacs_timeout_s + 30  # if this replica dies mid-attempt, another retries after it
                if await run_in_threadpool(self.store.lease_delivery, row["id"], self.target, time.time(), lease):
                    await self.deliver(row)
            next_due = await run_in_threadpool(self.store.next_due_at, self.target)
            timeout = 60.0 if next_due is None else max(0.05, next_due - time.time())
            self._wake.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=min(timeout, 60.0))

    async def _audit(self, result_id: str, delivered: bool, attempts: int, detail: str | None) -> None:
        if self.audit is not None:  # a database round trip: off the event loop
            await run_in_threadpool(partial(self.audit.delivery, result_id, delivered=delivered, attempts=attempts,
                                            detail=detail, target=self.target))

    async def deliver(self, row: dict) -> None:
        result_id = row["id"]
        load = self.store.load_outputs if self.target is Target.pacs else self.store.load_fhir
        counter = self.metrics.deliveries
        where = self.target.value
        try:
            payloads = await run_in_threadpool(load, result_id)
        except OSError:
            await self._set(result_id, delivery="failed", delivery_error="result files are missing from disk")
            counter.labels(where, "failed").inc()
            await self._audit(result_id, False, int(row[self.columns.attempts]), "result files are missing from disk")
            return
        outcome = await self.client.send(payloads)
        attempts = int(row[self.columns.attempts]) + 1
        if outcome.ok:
            await self._set(result_id, delivery="delivered", attempts=attempts, delivered_at=time.time(),
                         delivery_error=None, next_attempt_at=None)
            counter.labels(where, "delivered").inc()
            await self._audit(result_id, True, attempts, None)
            log.info("%s: result %s delivered (attempt %d)", where.upper(), result_id, attempts)
            return
        if attempts >= self.settings.pacs_max_attempts:
            await self._set(result_id, delivery="failed", attempts=attempts, delivery_error=outcome.detail,
                         next_attempt_at=None)
            counter.labels(where, "failed").inc()
            await self._audit(result_id, False, attempts, outcome.detail)
            log.error("%s: result %s NOT delivered after %d attempts: %s (POST /dicomweb/results/%s/deliver "
                      "retries it)", where.upper(), result_id, attempts, outcome.detail, result_id)
            return
        delay = retry_delay(self.settings, attempts, retryable=outcome.retryable)
        await self._set(result_id, attempts=attempts, delivery_error=outcome.detail,
                     next_attempt_at=time.time() + delay)
        counter.labels(where, "retry").inc()
        log.warning("%s: result %s not delivered (%s); attempt %d of %d, next in %.1f s", where.upper(), result_id,
                    outcome.detail, attempts, self.settings.pacs_max_attempts, delay)
