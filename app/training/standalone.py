"""``cxr worker``: a job runner of its own, beside or away from the servers (a GPU node). It claims
queued jobs from the shared database (an atomic conditional update: one runner wins each job), runs
each in a child process as the server's own runner does, reports its heartbeat, marks the jobs of
runners that stopped reporting as interrupted, and promotes a fine-tune by naming it in the database's
active-model pointer, which every replica follows (it has no model to swap itself)."""

from __future__ import annotations

import asyncio
import logging
import signal

from app.core.config import Settings
from app.db.active import ActivePointer
from app.db.engine import database_url, make_engine, redacted
from app.inference.catalog import catalog_of
from app.training.datasets.store import DatasetStore
from app.training.runner import JobRunner, runner_name
from app.training.store import JobStore
from models.card import read_card
from models.catalog import ModelCatalog
from models.digest import verify_file

log = logging.getLogger("app.training.standalone")


class PointerPromoter:
    """What promotion means away from a server: check the new version's files, then name it in the database."""

    def __init__(self, catalog: ModelCatalog, pointer: ActivePointer, name: str) -> None:
        self.catalog = catalog
        self.pointer = pointer
        self.name = name

    def activate(self, model: str) -> None:
        entry = self.catalog.find(model)
        card = read_card(entry.folder)
        verify_file(entry.folder / card.weights_file, card.sha256, "weights file")  # unreadable: refused here
        self.pointer.set(entry.folder.name, card.version, card.sha256, updated_by=self.name)


async def run_worker(settings: Settings) -> int:
    engine = make_engine(database_url(settings))
    name = runner_name(settings)
    store = JobStore(engine)  # checks the schema first (a newer one: refused, by name)
    promoter = PointerPromoter(catalog_of(settings), ActivePointer(engine), f"worker {name}")
    runner = JobRunner(settings, store, promoter, DatasetStore.of(settings), embedded=False)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    runner.start()
    log.info("worker %s: claiming jobs from %s (state %s)", name, redacted(engine.url), settings.state_dir)
    try:
        await stop.wait()
    finally:
        await runner.stop()  # a job still running is interrupted; this name claims it back at the next start
        store.close()
    log.info("worker %s stopped", name)
    return 0
