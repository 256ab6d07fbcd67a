"""The OpenAI routes: thin handlers that take the request's service, call it and return."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from sse_starlette import EventSourceResponse

from server.admission import Admission, admitted
from server.openai.chat import ChatService
from server.openai.completions import CompletionService
from server.openai.models import model_list
from server.openai.protocol import ChatCompletionRequest, CompletionRequest, ModelList
from server.openai.streaming import sse_frames

router = APIRouter()


@router.post("/v1/chat/completions", response_model=None)
async def create_chat_completion(body: ChatCompletionRequest, request: Request) -> Response:
    """OpenAI chat completions, answered by a search over the model's reasoning.

    The search waits for a slot first, one per choice (429 when the queue is full); the slots
    are held until the answer has been sent or the client has gone.
    """
    chat: ChatService = request.app.state.chat
    admission: Admission = request.app.state.admission
    prepared = await chat.prepare(body)

    async def respond() -> Response:
        if body.stream:
            frames = sse_frames(chat.chunks(prepared))
            return EventSourceResponse(frames, sep="\n", ping=15)
        answer = await chat.complete(prepared)
        return Response(answer.wire(), media_type="application/json")

    return await admitted(request, admission, respond, searches=body.n)


@router.post("/v1/completions", response_model=None)
async def create_completion(body: CompletionRequest, request: Request) -> Response:
    """OpenAI (and vLLM) completions: plain generation, no search.  Held to the same admission
    and cancelled the same way when the client goes."""
    completions: CompletionService = request.app.state.completions
    admission: Admission = request.app.state.admission
    prepared = await completions.prepare(body)

    async def respond() -> Response:
        return JSONResponse((await completions.create(prepared)).model_dump())

    return await admitted(request, admission, respond)


@router.get("/v1/models")
async def list_models(request: Request) -> ModelList:
    """The served model and its method aliases."""
    return model_list(request.app.state.engine)
