"""ponder's own routes, beside the OpenAI ones: health, metrics and the search trees."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from server.errors import NotFound

router = APIRouter()
TRACE_PAGE = (Path(__file__).parent / "static" / "trace.html").read_text(encoding="utf-8")


@router.get("/v1/traces/{trace_id}")
async def get_trace(trace_id: str, request: Request) -> dict[str, Any]:
    """A finished search's tree (kept for a while, newest first)."""
    trace = request.app.state.traces.get(trace_id)
    if trace is None:
        raise NotFound(f"No trace `{trace_id}`: unknown, or no longer kept.", param="trace_id")
    result: dict[str, Any] = trace
    return result


@router.get("/traces/{trace_id}", response_class=HTMLResponse)
async def show_trace(trace_id: str) -> HTMLResponse:
    """The tree viewer: a static page that draws ``/v1/traces/{trace_id}`` as SVG."""
    return HTMLResponse(TRACE_PAGE)


@router.get("/health", response_model=None)
async def health(request: Request) -> dict[str, str] | JSONResponse:
    """200 while the engine serves; 503 with the reason when it is down."""
    problem = request.app.state.engine.health()
    if problem is not None:
        return JSONResponse({"status": "unhealthy", "reason": problem}, status_code=503)
    return {"status": "ok"}


@router.get("/metrics")
async def metrics(request: Request) -> Response:
    """Prometheus exposition of ponder's instruments."""
    registry = request.app.state.metrics.registry
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
