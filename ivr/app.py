"""The Starlette application factory; the consent store is opened in its lifespan."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.types import Receive, Scope, Send

from consent_store import open_store
from ivr.api import consent as api
from ivr.api.opt_outs import routes as opt_outs_routes
from ivr.background import running_task
from ivr.optout_webhooks import running_notifier
from ivr.pages import audit, auth, businesses_admin, manage, try_phone, users_admin, web
from ivr.pages.compliance import routes as compliance_routes
from ivr.quality import page as quality
from ivr.recordings.fetch import running_fetcher
from ivr.recordings.sync import running_reconciler
from ivr.runtime import start_runtime
from ivr.security import HardeningMiddleware
from ivr.settings import Settings
from ivr.twilio import webhooks
from ivr.twilio.message_status import MessageStatusCallbacks, is_status_callback
from ivr.twilio.messaging import routes as messaging_routes


class ConsentApp(Starlette):
    """The Starlette app, except for the message status callbacks (millions a day): those are
    answered before its middleware, by a handler that applies the same hardening itself."""

    status_callbacks = MessageStatusCallbacks()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if is_status_callback(scope):
            scope["app"] = self
            await self.status_callbacks(scope, receive, send)
            return
        await super().__call__(scope, receive, send)


def create_app(settings: Settings | None = None) -> Starlette:
    """Build the app; the database URL is checked now, the store opened at start-up."""
    settings = settings or Settings.from_env()
    store = open_store(settings.database_url)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await store.open()
        try:
            app.state.runtime = await start_runtime(settings, store)
            async with running_task(app.state.runtime.catalog.watch(), "catalog-watch"):
                async with running_notifier(
                    store, settings.webhook_retry_seconds, app.state.runtime.secret_key
                ):
                    async with running_fetcher(app, settings, store) as fetcher:
                        async with running_reconciler(store, settings, fetcher.deps.archive):
                            yield
        finally:
            await store.close()

    routes = [
        *webhooks.routes,
        *messaging_routes,  # every incoming WhatsApp/SMS message of every business
        *web.routes,
        *try_phone.routes,
        *auth.routes,
        *manage.routes,
        *users_admin.routes,
        *businesses_admin.routes,
        *quality.routes,
        *api.routes,
        *audit.routes,
        *opt_outs_routes,
        *compliance_routes,
    ]
    return ConsentApp(routes=routes, lifespan=lifespan, middleware=[Middleware(HardeningMiddleware)])
