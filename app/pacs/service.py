"""STOW-RS intake and background processing: accept, persist, answer; infer and deliver later.

Accepted instances are written to disk before the HTTP answer, so a restart loses nothing:
on start, anything still queued is processed again. Inference goes through the same
Predictor (and batcher) as /predict. Delivery to the PACS (delivery.py) retries with backoff until it
succeeds or runs out of attempts; either way the row says what happened.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from functools import partial

from starlette.concurrency import run_in_threadpool

from app.audit.record import AuditOutcome
from app.audit.inputs import InputKeeper
from app.audit.trail import AuditTrail, ScreeningFacts, record_inference, record_refusal, screening_facts
from app.core.aio import cancel_and_wait
from app.core.config import Settings
from app.pacs.intake import Eligible, check_instance
from app.dicom.codes import Finding
from app.dicom.multipart import Part
from app.dicom.stow_response import Accepted, Failed, FailureReason
from app.errors import NotEvaluated, NotReady, QueueFull
from app.pacs.outputs import DicomResults, build_not_evaluated, build_results
from app.core.config import DicomOutput
from app.core.metrics import Metrics
from app.fhir.bundle import ImagingRef, bundle_json, result_bundle
from app.pacs.client import PacsClient
from app.pacs.delivery import Client, Delivery
from app.inference.pipeline import Predictor
from app.pacs.results import ResultStore, Target
from models.errors import CXRError

ORPHAN_SCAN_S = 15.0  # how often (at most) a replica looks for instances nobody is processing
log = logging.getLogger(__name__)


class StowService:
    def __init__(self, settings: Settings, store: ResultStore, predictor: Predictor, metrics: Metrics,
                 pacs: PacsClient, *, fhir: Client | None = None, audit: AuditTrail | None = None,
                 inputs: InputKeeper | None = None) -> None:
        self.settings = settings
        self.store = store
        self.predictor = predictor
        self.metrics = metrics
        self.audit = audit  # one record per processed instance (and per delivery outcome, in Delivery)
        self.inputs = inputs  # screened instances kept for feedback (CXR_KEEP_INPUTS_DAYS)
        self.delivery = Delivery(settings, store, metrics, pacs, target=Target.pacs, audit=audit)
        self.fhir = None if fhir is None else Delivery(settings, store, metrics, fhir, target=Target.fhir, audit=audit)
        self._queue: asyncio.Queue[str] = asyncio.Queue()
        self._tasks: list[asyncio.Task] = []
        self._intake_lock = threading.Lock()  # duplicate check + insert are one step

    # -- intake (request path) ----------------------------------------------------------------
    def _accept_sync(self, parts: list[Part], study_uid: str | None) -> tuple[list[Accepted], list[Failed], list[str]]:
        verdicts = [check_instance(part, study_uid=study_uid) for part in parts]  # parsing needs no lock
        with self._intake_lock:
            return self._accept_locked(verdicts)

    def _accept_locked(self, verdicts: list[Eligible | Failed]) -> tuple[list[Accepted], list[Failed], list[str]]:
        """Returns (accepted, failed, ids of new results to process). An instance received before
        (a PACS re-sending a study) maps to its existing result and is not read again."""
        new: list[str] = []
        accepted: list[Accepted] = []
        failed: list[Failed] = []
        waiting = self.store.count_waiting()
        seen: set[str] = set()
        for verdict in verdicts:
            if isinstance(verdict, Eligible) and verdict.sop_instance_uid in seen:
                verdict = Failed(verdict.sop_class_uid, verdict.sop_instance_uid, FailureReason.CANNOT_UNDERSTAND,
                                 "the same SOP Instance UID appears twice in this request")
            if isinstance(verdict, Failed):
                failed.append(verdict)
                continue
            seen.add(verdict.sop_instance_uid)
            earlier = self.store.find_source(verdict.sop_instance_uid)
            if earlier is not None:
                accepted.append(Accepted(verdict.sop_class_uid, verdict.sop_instance_uid, earlier["id"]))
                continue
            if waiting >= self.settings.dicom_queue_size:
                failed.append(Failed(verdict.sop_class_uid, verdict.sop_instance_uid, FailureReason.OUT_OF_RESOURCES,
                                     f"{waiting} instances are already waiting for inference; retry later"))
                continue
            result_id = self.store.add(verdict.study_uid, verdict.sop_class_uid, verdict.sop_instance_uid,
                                       verdict.part)
            waiting += 1
            new.append(result_id)
            accepted.append(Accepted(verdict.sop_class_uid, verdict.sop_instance_uid, result_id))
        return accepted, failed, new

    async def accept(self, parts: list[Part], study_uid: str | None = None) -> tuple[list[Accepted], list[Failed]]:
        accepted, failed, new = await run_in_threadpool(self._accept_sync, parts, study_uid)
        for result_id in new:
            self._queue.put_nowait(result_id)
        self.metrics.dicom_instances.labels("accepted").inc(len(accepted))
        self.metrics.dicom_instances.labels("rejected").inc(len(failed))
        log.info("STOW-RS: %d instance(s) queued, %d received before, %d refused (%s)", len(new),
                 len(accepted) - len(new), len(failed), ", ".join(sorted({f"{f.reason.name}" for f in failed})) or "-")
        return accepted, failed

    @property
    def deliveries(self) -> list[Delivery]:
        return [d for d in (self.delivery, self.fhir) if d is not None]

    def retry_delivery(self, result_id: str) -> None:
        for delivery in self.deliveries:
            if delivery.configured:
                delivery.retry(result_id)

    # -- background ---------------------------------------------------------------------------
    async def start(self) -> None:
        for result_id in await run_in_threadpool(self.store.unfinished):
            self._queue.put_nowait(result_id)
        if self._queue.qsize():
            log.info("STOW-RS: %d instance(s) accepted before the restart are queued again", self._queue.qsize())
        self._tasks = [asyncio.create_task(self._work(), name=f"stow-worker-{i}")
                       for i in range(self.settings.dicom_workers)]
        for delivery in self.deliveries:
            if delivery.configured:
                self._tasks.append(asyncio.create_task(delivery.run(), name=f"{delivery.target.value}-delivery"))
        if self.settings.dicom_retention_days > 0:
            self._tasks.append(asyncio.create_task(self._housekeeping(), name="dicom-retention"))
        self._tasks.append(asyncio.create_task(self._adopt_orphans(), name="stow-orphans"))

    async def stop(self) -> None:
        for task in self._tasks:
            await cancel_and_wait(task)
        self._tasks = []
        for delivery in self.deliveries:
            await delivery.client.aclose()

    async def _work(self) -> None:
        while True:
            result_id = await self._queue.get()
            try:
                await self.process(result_id)
            except asyncio.CancelledError:
                raise
            except Exception:  # one bad instance must not stop the worker
                log.exception("STOW-RS: unexpected error processing result %s", result_id)
                await self._set(result_id, state="failed", error="internal error while processing; see the server log")

    async def _screen(self, data: bytes, facts: ScreeningFacts) -> DicomResults:
        kinds = self.settings.dicom_output_kinds
        while True:
            try:
                inf = await self.predictor.infer(data)
                record_inference(facts, inf)
                break
            except NotEvaluated as refused:  # the integrity check refused it: a report says so, no map or overlay
                record_refusal(facts, refused)
                return await run_in_threadpool(build_not_evaluated, refused.dataset, refused.integrity.reason,
                                               *refused.model, kinds)
            except (QueueFull, NotReady):  # /predict traffic comes first; wait our turn
                await asyncio.sleep(0.5)
        return await run_in_threadpool(build_results, inf, kinds, alpha=self.settings.heatmap_alpha,
                                       compression=self.settings.dicom_sc_compression)

    def _save(self, result_id: str, results: DicomResults) -> None:
        """Write the objects (and the FHIR Bundle when a FHIR server is configured)."""
        fhir = None
        if self.fhir is not None and self.fhir.configured:
            fhir = bundle_json(result_bundle(results.finding, ImagingRef.of(results.source), result_id=result_id))
        self.store.save_outputs(result_id, {k.value: v for k, v in results.encoded().items()}, fhir)

    async def _set(self, result_id: str, **fields: object) -> None:
        """Write fields of a result row: a database round trip, off the event loop."""
        await run_in_threadpool(partial(self.store.update, result_id, **fields))

    def _delivery_states(self, results: DicomResults) -> dict[str, str]:
        pacs = self.delivery.initial_state() if results.objects else "not_configured"  # nothing to send
        fhir = self.fhir.initial_state() if self.fhir is not None else "not_configured"
        return {"delivery": pacs, "fhir_delivery": fhir}

    async def process(self, result_id: str) -> None:
        if not await run_in_threadpool(self.store.claim, result_id):
            return  # another replica has it, or it is done
        path = self.store.incoming_path(result_id)
        if not path.exists():
            await self._set(result_id, state="failed", error="the received instance is missing from disk")
            return
        data = await run_in_threadpool(path.read_bytes)
        facts = screening_facts(data)
        try:
            results = await self._screen(data, facts)
            await run_in_threadpool(self._save, result_id, results)
        except CXRError as exc:  # unreadable pixels, attributes that cannot be copied: the instance's fault
            facts.detail = exc.detail
            await self._audit(result_id, AuditOutcome.error, facts)
            await self._set(result_id, state="failed", error=exc.detail)
            self.metrics.dicom_instances.labels("failed").inc()
            path.unlink(missing_ok=True)
            log.warning("STOW-RS: result %s failed: %s", result_id, exc.detail)
            return
        f = results.finding
        uids = {"sc_sop_instance_uid": results.uid(DicomOutput.sc), "sr_sop_instance_uid": results.uid(DicomOutput.sr),
                "pm_sop_instance_uid": results.uid(DicomOutput.pm)}
        if isinstance(f, Finding):
            await self._set(result_id, state="done", error=None, prediction=f.label, probability=f.probability,
                              threshold=f.threshold, priority=f.priority.value,
                              model=f"{f.model_name}@{f.model_version}", **uids, **self._delivery_states(results))
            if self.inputs is not None and facts.input_sha256:
                await run_in_threadpool(self.inputs.keep, facts.input_sha256, data, facts.input_format)
            await self._audit(result_id, AuditOutcome.screened, facts)
            self.metrics.dicom_instances.labels("done").inc()
            log.info("STOW-RS: result %s done (%s, %s)", result_id, f.label, f.priority.value)
        else:
            await self._set(result_id, state="not_evaluated", error=f.reason, priority=f.priority.value,
                              model=f"{f.model_name}@{f.model_version}", **uids, **self._delivery_states(results))
            await self._audit(result_id, AuditOutcome.not_evaluated, facts)
            self.metrics.dicom_instances.labels("not_evaluated").inc()
            log.info("STOW-RS: result %s not evaluated: %s", result_id, f.reason)
        path.unlink(missing_ok=True)
        for delivery in self.deliveries:
            delivery.wake()

    async def _audit(self, result_id: str, outcome: AuditOutcome, facts: ScreeningFacts) -> None:
        if self.audit is not None:  # a database round trip: off the event loop
            await run_in_threadpool(self.audit.stow_instance, result_id, outcome, facts)

    async def purge_expired(self) -> int:
        cutoff = time.time() - self.settings.dicom_retention_days * 86400
        removed = await run_in_threadpool(self.store.purge, cutoff)
        if removed:
            log.info("DICOM results: %d older than %g days deleted", removed, self.settings.dicom_retention_days)
        return removed

    async def _adopt_orphans(self) -> None:
        """Instances another replica accepted or claimed and then died with: a claim older than
        CXR_DICOM_CLAIM_TIMEOUT_S is queued again, and whichever replica claims a queued one first screens it.
        With one replica, a no-op."""
        timeout = self.settings.dicom_claim_timeout_s
        while True:
            await asyncio.sleep(min(ORPHAN_SCAN_S, timeout / 2))
            try:
                waiting = await run_in_threadpool(self.store.unfinished, timeout)
            except Exception as exc:  # the database away for a moment: the next scan tries again
                log.warning("STOW-RS: orphan scan failed: %s", exc)
                continue
            if self._queue.empty():  # never flood a busy queue; what waits is found at the next scan
                for result_id in waiting:
                    self._queue.put_nowait(result_id)

    async def _housekeeping(self) -> None:
        while True:
            try:
                await self.purge_expired()
            except OSError as exc:
                log.error("DICOM results: retention sweep failed: %s", exc)
            await asyncio.sleep(3600)
