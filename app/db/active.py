"""The active-model pointer: which model every replica serves. Written by whoever activates (an admin
through any replica, a worker promoting a fine-tune); read by every replica, which follows it."""

from __future__ import annotations

import datetime as dt

from pydantic import BaseModel
from sqlalchemy import Engine, select
from sqlalchemy.exc import IntegrityError

from app.db.schema import active_model


class ActiveModel(BaseModel):
    name: str
    version: str
    sha256: str
    updated_at: str
    updated_by: str | None = None


class ActivePointer:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def get(self) -> ActiveModel | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(active_model).where(active_model.c.id == 1)).first()
        return None if row is None else ActiveModel(**{k: v for k, v in row._mapping.items() if k != "id"})

    def set(self, name: str, version: str, sha256: str, updated_by: str | None = None) -> None:
        values = {"name": name, "version": version, "sha256": sha256, "updated_by": updated_by,
                  "updated_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="microseconds")}
        for attempt in range(2):  # the first write ever may race another replica's: then update the row it made
            try:
                with self.engine.begin() as conn:
                    if not conn.execute(active_model.update().where(active_model.c.id == 1).values(**values)).rowcount:
                        conn.execute(active_model.insert().values(id=1, **values))
                return
            except IntegrityError:
                if attempt:
                    raise
