"""build_app(args, engine): the FastAPI application around one engine."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from server.args import ServerArgs
from server.auth import install_auth, load_keys
from server.engines.base import ServingEngine
from server.errors import install_error_handlers
from server.limits import BodySizeLimit
from server.logs import RequestIdMiddleware
from server.metrics import Metrics
from server.routes import router
from server.serving import ChatService


def build_app(args: ServerArgs, engine: ServingEngine) -> FastAPI:
    """Wire routes, error handlers and metrics to ``engine``; the caller owns the engine."""

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield

    app = FastAPI(title="ponder", version="0.1.0", lifespan=lifespan)
    app.state.service = ChatService(engine, args, Metrics(engine.stats, engine.metric_collectors()))
    app.include_router(router)
    install_error_handlers(app)
    install_auth(app, load_keys(args), protect_metrics=args.metrics_require_key)
    app.add_middleware(BodySizeLimit, limit=args.max_request_bytes)
    app.add_middleware(RequestIdMiddleware)
    return app
