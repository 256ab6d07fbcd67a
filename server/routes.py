"""Thin HTTP handlers: chat completions, models, health, metrics."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel
from sse_starlette import EventSourceResponse
from starlette.concurrency import run_in_threadpool
from starlette.types import Receive, Scope, Send

from server.completions import completion_response, generation_requests, prompts_of
from server.errors import ModelNotFound, NotFound
from server.limits import Admission
from server.protocol import (
    ChatCompletionRequest,
    CompletionRequest,
    CompletionResponse,
    ModelList,
)
from server.serving import CLIENT_CLOSED, ChatService
from server.streaming import chat_chunks, sse_frames

router = APIRouter()
TRACE_PAGE = (Path(__file__).parent / "static" / "trace.html").read_text(encoding="utf-8")
T = TypeVar("T")
DISCONNECT_POLL_SECONDS = 0.25


def _service(request: Request) -> ChatService:
    service: ChatService = request.app.state.service
    return service


class _ClientGone(Exception):
    """The client disconnected while its request was waiting or running."""


class _Releasing(Response):
    """Wraps a streaming response and calls ``release`` once it has ended, however it ended."""

    def __init__(self, inner: Response, release: Callable[[], None]) -> None:
        super().__init__()
        self._inner = inner
        self._release = release

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve the wrapped response, then release."""
        try:
            await self._inner(scope, receive, send)
        finally:
            self._release()


async def _unless_disconnected(request: Request, work: Awaitable[T]) -> T:
    """Await ``work``, cancelling it (and so its engine calls) if the client goes away.

    Work that finished anyway in that instant is returned, so a slot it took is not lost.
    """
    task = asyncio.ensure_future(work)
    try:
        while True:
            done, _ = await asyncio.wait({task}, timeout=DISCONNECT_POLL_SECONDS)
            if done:
                return task.result()
            if await request.is_disconnected():
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
                if task.cancelled():
                    raise _ClientGone
                return task.result()
    finally:
        task.cancel()


async def _slot(request: Request, admission: Admission) -> bool:
    """Wait for a search slot (429 when the queue is full); ``False`` if the client left first."""
    try:
        await _unless_disconnected(request, admission.acquire())
    except _ClientGone:
        return False
    return True


async def _answer(
    request: Request, admission: Admission, work: Callable[[], Awaitable[BaseModel]]
) -> Response:
    """Run ``work`` in the slot already held and answer with its JSON; 499 (the work
    cancelled) if the client goes first.  The slot is given back either way."""
    try:
        result = await _unless_disconnected(request, work())
    except _ClientGone:
        return Response(status_code=CLIENT_CLOSED)
    finally:
        admission.release()
    return JSONResponse(result.model_dump())


@router.post("/v1/chat/completions", response_model=None)
async def create_chat_completion(body: ChatCompletionRequest, request: Request) -> Response:
    """OpenAI chat completions, answered by a search over the model's reasoning.

    The search waits for a slot first (429 when the queue is full); the slot is held until the
    answer has been sent or the client has gone.
    """
    service = _service(request)
    prepared = await service.prepare(body)
    admission = service.admission
    if not await _slot(request, admission):
        return Response(status_code=CLIENT_CLOSED)
    if body.stream:
        frames = sse_frames(chat_chunks(prepared, service.events(prepared)))
        return _Releasing(EventSourceResponse(frames, sep="\n", ping=15), admission.release)
    return await _answer(request, admission, lambda: service.complete(prepared))


@router.post("/v1/completions", response_model=None)
async def create_completion(body: CompletionRequest, request: Request) -> Response:
    """OpenAI (and vLLM) completions: plain generation, no search.  Held to the same admission
    and cancelled the same way when the client goes."""
    service = _service(request)
    engine = service.engine
    if body.model != engine.model_name:
        raise ModelNotFound(body.model)
    prompts = await run_in_threadpool(prompts_of, body, engine)  # seconds for megabytes
    generation = generation_requests(body, prompts)

    async def generate() -> CompletionResponse:
        outputs = await engine.generate(generation)
        return completion_response(body, prompts, outputs, engine)

    if not await _slot(request, service.admission):
        return Response(status_code=CLIENT_CLOSED)
    return await _answer(request, service.admission, generate)


@router.get("/v1/models")
async def list_models(request: Request) -> ModelList:
    """The served model and its method aliases."""
    return _service(request).models()


@router.get("/v1/traces/{trace_id}")
async def get_trace(trace_id: str, request: Request) -> dict[str, Any]:
    """A finished search's tree (kept for a while, newest first)."""
    trace = _service(request).traces.get(trace_id)
    if trace is None:
        raise NotFound(f"No trace `{trace_id}`: unknown, or no longer kept.", param="trace_id")
    return trace


@router.get("/traces/{trace_id}", response_class=HTMLResponse)
async def show_trace(trace_id: str) -> HTMLResponse:
    """The tree viewer: a static page that draws ``/v1/traces/{trace_id}`` as SVG."""
    return HTMLResponse(TRACE_PAGE)


@router.get("/health", response_model=None)
async def health(request: Request) -> dict[str, str] | JSONResponse:
    """200 while the engine serves; 503 with the reason when it is down."""
    problem = _service(request).engine.health()
    if problem is not None:
        return JSONResponse({"status": "unhealthy", "reason": problem}, status_code=503)
    return {"status": "ok"}


@router.get("/metrics")
async def metrics(request: Request) -> Response:
    """Prometheus exposition of ponder's instruments."""
    registry = _service(request).metrics.registry
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
