"""build_app(args, engine): the FastAPI application around one engine."""

from __future__ import annotations

from fastapi import FastAPI

from server.admission import Admission
from server.args import ServerArgs
from server.engines.base import ServingEngine
from server.errors import install_error_handlers
from server.metrics import Metrics
from server.middleware import ApiKeys, BodySizeLimit, RequestIdMiddleware, load_keys
from server.openai import routers
from server.openai.chat import ChatService
from server.openai.completions import CompletionService
from server.openai.responses import ResponsesService
from server.openai.service import SearchService
from server.own_routes import router
from server.traces import TraceStore


def build_app(
    args: ServerArgs, engine: ServingEngine, judge: ServingEngine | None = None
) -> FastAPI:
    """Wire routes, services, error handlers and middleware to ``engine`` (and ``judge``, the
    ``--verifier`` model, if any); the caller owns the engines."""
    app = FastAPI(title="ponder", version="0.1.0")
    metrics = Metrics(engine.stats, engine.metric_collectors())
    admission = Admission(args.max_concurrent_searches, args.max_queued_searches, metrics)
    traces = TraceStore()
    app.state.engine = engine
    app.state.metrics = metrics
    app.state.admission = admission
    app.state.traces = traces
    service = SearchService(engine, args, metrics, admission, traces, judge)
    app.state.chat = ChatService(service)
    app.state.completions = CompletionService(engine, metrics)
    app.state.responses = ResponsesService(service)
    app.include_router(routers.router)
    app.include_router(router)
    install_error_handlers(app)
    keys = load_keys(args)
    if keys:
        app.add_middleware(ApiKeys, keys=keys, protect_metrics=args.metrics_require_key)
    app.add_middleware(BodySizeLimit, limit=args.max_request_bytes)
    app.add_middleware(RequestIdMiddleware)
    return app
