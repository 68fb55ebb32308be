"""The Litestar app: routes, problem+json errors, OpenAPI at ``/schema``, tracing, and a lifespan that
holds the NATS connection, the (read-only) database engine and the one event subscription.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from importlib.metadata import PackageNotFoundError, version

from litestar import Litestar
from litestar._openapi.plugin import OpenAPIPlugin  # the one place the served schema dict is kept
from litestar.di import Provide
from litestar.plugins import PluginProtocol
from litestar.plugins.opentelemetry import OpenTelemetryConfig, OpenTelemetryPlugin

from jobwire.runtime import telemetry
from jobwire.runtime.bus import connect
from jobwire.runtime.heap import freeze_startup_heap, thaw_heap
from jobwire.store.engine import make_engine, session_factory
from jobwire.store.reads import Reads

from .allow import AllowHeaders
from .apidocs import assets_router, openapi_config
from .arrays.controllers import ArrayController
from .artifacts.controllers import ArtifactController
from .auth.audit import audit_middleware
from .auth.controllers import AuditController, QuotaController, TokenController
from .auth.credentials import check_mode, check_sources, shared_keys
from .auth.guard import authorize_request, check_every_route
from .auth.principal import provide_caller
from .auth.tokens import TokenMemory
from .auth.whoami import WhoamiController
from .bodytimeout import body_timeout
from .events.controllers import EventController
from .events.feed import FeedController
from .files.controllers import FileController
from .health.controllers import HealthController
from .inputs.controllers import InputController
from .jobs.admission import Admissions
from .jobs.controllers import JobBatchController, JobController
from .jobs.counts import JobCountController
from .jobs.quota_memory import QuotaMemory
from .logs.controllers import LogController
from .metrics.controllers import MetricsController
from .metrics.middleware import submit_metrics_middleware
from .nodes.controllers import NodeController
from .nodes.snapshot import NodeSnapshot
from .openapi_contract import complete
from .openapi_problems import document_problems
from .problems import EXCEPTION_HANDLERS
from .programs.controllers import ProgramController
from .resources import STATE_KEY, Resources, provide_resources
from .settings import GatewaySettings
from .templates.controllers import TemplateController
from .ui import ui_router
from .waiters import EventWaiters
from .workflows.controllers import WorkflowController

log = logging.getLogger(__name__)
SERVICE = "gateway"


def _version() -> str:
    try:
        return version("jobwire-gateway")
    except PackageNotFoundError:  # pragma: no cover - running from a bare source tree
        return "0.0.0"


def _lifespan(settings: GatewaySettings) -> Callable[[Litestar], AbstractAsyncContextManager[None]]:
    """Connections live as long as the app serves; nothing else is kept between requests."""

    @contextlib.asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        bus = await connect(settings.bus, name=f"jobwire-{SERVICE}", declare=True)
        engine = make_engine(settings.database_url)
        reads = Reads(settings.database_url)
        waiters = EventWaiters(bus.nc)
        sessions = session_factory(engine)
        nodes = NodeSnapshot(sessions, bus.nc, refresh=settings.nodes_refresh)
        memory = TokenMemory(
            bus,
            sessions,
            touch_every=settings.token_touch_interval,
            reload_every=settings.token_reload_interval,
        )
        limits = QuotaMemory(engine, refresh=settings.quota_refresh)
        try:
            await waiters.start()
            await nodes.start()
            await memory.start()
            await limits.start()
            res = Resources(
                settings=settings,
                bus=bus,
                engine=engine,
                sessions=sessions,
                waiters=waiters,
                nodes=nodes,
                tokens=memory,
                admissions=Admissions(engine, limits),
                keys=shared_keys(settings),
                reads=reads,
            )
            await check_sources(res, res.keys)
            app.state[STATE_KEY] = res
            # started: what exists now lives as long as the process, and a full collection walking it
            # was a request's 30-170 ms pause (``jobwire.runtime.heap``)
            frozen = freeze_startup_heap()
            log.debug("gateway started; %d objects kept out of the collector's walks", frozen)
            yield
        finally:
            thaw_heap()
            await limits.stop()
            await nodes.stop()
            await memory.stop()
            await waiters.stop()
            await bus.close()
            await engine.dispose()
            await reads.dispose()

    return lifespan


def create_app(settings: GatewaySettings) -> Litestar:
    """A gateway app for ``settings``; connections open in its lifespan (serve it to use it)."""
    check_mode(settings)
    shared_keys(settings)  # a malformed keys file stops the start here, not on the first request
    plugins: list[PluginProtocol] = []
    allow = AllowHeaders()
    if telemetry.wanted(settings.tracing):
        telemetry.setup_tracing(SERVICE)
        plugins.append(OpenTelemetryPlugin(OpenTelemetryConfig()))
    app = Litestar(
        route_handlers=[
            JobCountController,
            JobBatchController,
            JobController,
            WorkflowController,
            ArrayController,
            LogController,
            EventController,
            ArtifactController,
            FileController,
            NodeController,
            HealthController,
            TokenController,
            QuotaController,
            AuditController,
            TemplateController,
            InputController,
            ProgramController,
            assets_router(),
            FeedController,
            WhoamiController,
            ui_router(),
            MetricsController,
        ],
        dependencies={
            "res": Provide(provide_resources, sync_to_thread=False),
            "caller": Provide(provide_caller, sync_to_thread=False),
        },
        before_request=authorize_request,
        middleware=[body_timeout(settings.body_read_timeout), submit_metrics_middleware, audit_middleware],
        exception_handlers=EXCEPTION_HANDLERS,
        before_send=[allow],
        lifespan=[_lifespan(settings)],
        plugins=plugins,
        request_max_body_size=settings.max_body_size,
        logging_config=None,  # the process configures logging (jobwire.runtime.lifecycle.setup_logging)
        openapi_config=openapi_config(_version()),
    )
    document_problems(app)
    complete(app.plugins.get(OpenAPIPlugin).provide_openapi_schema())
    allow.learn(app)
    check_every_route(app)
    return app
