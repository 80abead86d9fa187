"""Request → what the routers need: the service context and the feed reader the app factory stored."""

from __future__ import annotations

from fastapi import Request

from nuseal.server.services.context import ServiceContext
from nuseal.server.services.feed_documents import FeedReader
from nuseal.server.services.legacy_feed import LegacyFeed


def service_context(request: Request) -> ServiceContext:
    ctx = request.app.state.ctx
    assert isinstance(ctx, ServiceContext)
    return ctx


def feed_reader(request: Request) -> FeedReader:
    feed = request.app.state.feed
    assert isinstance(feed, FeedReader)
    return feed


def legacy_feed(request: Request) -> LegacyFeed:
    legacy = request.app.state.legacy
    assert isinstance(legacy, LegacyFeed)
    return legacy
