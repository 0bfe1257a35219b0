"""The kodomo webhook as a connector: deliveries go to the outbox and are relayed before the 2xx."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Iterator, Mapping

from connectors.contract import Connector, Item
from hub.serve.feeds import ServiceRunner
from schemas.codes import Feed


class PushedFeed(Connector):
    """The kodomo webhook as a connector: ``read`` yields the items of the delivery handed to it."""

    name = Feed.KODOMO.value

    def __init__(self) -> None:
        self._items: list[Item] = []

    def push(self, items: Iterable[Item]) -> None:
        self._items.extend(items)

    def read(self, checkpoints: Mapping[str, str]) -> Iterator[Item]:
        items, self._items = self._items, []
        yield from items


class WebhookPublisher:
    """``publish`` for ``make_router``: outbox, then relay, awaiting the broker's acknowledgement.

    Runs off the event loop (``asyncio.to_thread``). Raises when the broker did not acknowledge:
    the router then answers 503 and the sender retries; what reached the outbox stays there and
    is relayed by the kodomo runner's background round (same ids, the hub dedupes).
    """

    def __init__(self, runner: ServiceRunner, feed: PushedFeed) -> None:
        self.runner = runner
        self.feed = feed

    def publish_sync(self, items: list[Item]) -> None:
        with self.runner.lock:
            self.feed.push(items)
            self.runner.read_into_outbox()
            self.runner.relay()

    async def __call__(self, items: list[Item]) -> None:
        await asyncio.to_thread(self.publish_sync, items)
