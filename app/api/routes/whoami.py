"""GET /whoami: what the presented API key may do, so that a client (the console) shows only the actions
its key allows. It says nothing about other keys and never echoes the key."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter

from app.api.deps import PredictRoleDep
from app.core.security import Principal
from app.schemas import ErrorResponse, Identity

router = APIRouter(tags=["health"])


@router.get("/whoami", response_model=Identity, responses={401: {"model": ErrorResponse}},
            summary="the role of the presented API key (any valid key)")
async def whoami(principal: Annotated[Principal | None, PredictRoleDep]) -> Identity:
    if principal is None:  # CXR_AUTH=off: anyone may do anything
        return Identity(auth=False, role="admin", key_id=None)
    return Identity(auth=True, role=principal.role, key_id=principal.key_id)
