"""The OpenAI routes: thin handlers that take the request's service, call it and return."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from functools import partial

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from sse_starlette import EventSourceResponse, ServerSentEvent

from server.admission import Admission, admitted
from server.openai.aliases import model_list
from server.openai.chat import ChatService
from server.openai.completions import CompletionService
from server.openai.completions_protocol import CompletionRequest
from server.openai.protocol import ChatCompletionRequest, ModelList, OpenAIBaseModel
from server.openai.responses import ResponsesService
from server.openai.responses_protocol import ResponsesRequest
from server.openai.streaming import event_frames, sse_frames

router = APIRouter()


@router.post("/v1/chat/completions", response_model=None)
async def create_chat_completion(body: ChatCompletionRequest, request: Request) -> Response:
    """OpenAI chat completions, answered by a search over the model's reasoning: ``n``
    searches, one slot each (see :func:`_searched`)."""
    chat: ChatService = request.app.state.chat
    prepared = await chat.prepare(body)
    frames = sse_frames(chat.chunks(prepared)) if body.stream else None
    return await _searched(request, frames, partial(chat.complete, prepared), searches=body.n)


@router.post("/v1/responses", response_model=None)
async def create_response(body: ResponsesRequest, request: Request) -> Response:
    """OpenAI's Responses API, stateless, answered by the same search as chat completions."""
    responses: ResponsesService = request.app.state.responses
    prepared = await responses.prepare(body)
    frames = event_frames(responses.stream(prepared)) if body.stream else None
    return await _searched(request, frames, partial(responses.create, prepared), searches=1)


async def _searched(
    request: Request,
    frames: AsyncIterator[ServerSentEvent] | None,
    answer: Callable[[], Awaitable[OpenAIBaseModel]],
    *,
    searches: int,
) -> Response:
    """Run ``searches`` searches, one slot each: ``frames`` streamed when given, else
    ``answer()`` as one JSON body.  The searches wait for their slots first (429 when the
    queue is full); the slots are held until the answer has been sent or the client has
    gone."""

    async def respond() -> Response:
        if frames is not None:
            return EventSourceResponse(frames, sep="\n", ping=15)
        return Response((await answer()).wire(), media_type="application/json")

    return await admitted(request, request.app.state.admission, respond, searches=searches)


@router.post("/v1/completions", response_model=None)
async def create_completion(body: CompletionRequest, request: Request) -> Response:
    """OpenAI (and vLLM) completions: plain generation, no search.  Held to the same admission
    (a slot per sequence, as chat's ``n`` takes one per choice) and cancelled the same way when
    the client goes."""
    completions: CompletionService = request.app.state.completions
    admission: Admission = request.app.state.admission
    prepared = await completions.prepare(body)

    async def respond() -> Response:
        if body.stream:
            return EventSourceResponse(sse_frames(completions.stream(prepared)), sep="\n", ping=15)
        return JSONResponse((await completions.create(prepared)).model_dump())

    return await admitted(request, admission, respond, searches=prepared.sequences)


@router.get("/v1/models")
async def list_models(request: Request) -> ModelList:
    """The served model and its method aliases."""
    return model_list(request.app.state.engine)
