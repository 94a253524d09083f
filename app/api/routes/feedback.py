"""POST /feedback: a reader's verdict on a screened image (predict role), kept for monitoring and the trail."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from app.api.deps import PredictRoleDep
from app.api.routes.audit import TrailDep
from app.audit.feedback import give_feedback
from app.audit.http_records import caller_of
from app.schemas import ErrorResponse, FeedbackRequest, FeedbackResponse

router = APIRouter(tags=["audit"], dependencies=[PredictRoleDep])


@router.post("/feedback", response_model=FeedbackResponse, status_code=201,
             responses={200: {"model": FeedbackResponse, "description": "replaced this reader's earlier verdict"},
                        404: {"model": ErrorResponse}, 422: {"model": ErrorResponse}, 409: {"model": ErrorResponse}},
             summary="record a reader's verdict (NORMAL/PNEUMONIA) on a screened image")
async def post_feedback(body: FeedbackRequest, request: Request, response: Response, trail: TrailDep) -> FeedbackResponse:
    result = give_feedback(trail, body, caller_of(getattr(request.state, "principal", None)))
    if result.replaced:
        response.status_code = 200
    return result
