"""The kodomo webhook as a connector: deliveries go to the outbox and are relayed before the 2xx."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Iterator, Mapping

from connectors.contract import Connector, Item
from hub.serve.feeds import ServiceRunner
from schemas.codes import Feed


class PushedFeed(Connector):
    """The kodomo webhook as a connector: ``read`` yields the items of the delivery handed to it, then
    whatever is new in the delivery files folder (``files``, the same replay ``tsunagu run`` does), so
    the webhook and the files share one runner, one outbox and one checkpoint scope."""

    name = Feed.KODOMO.value

    def __init__(self, files: Connector | None = None) -> None:
        self._items: list[Item] = []
        self.files = files

    def push(self, items: Iterable[Item]) -> None:
        self._items.extend(items)

    def read(self, checkpoints: Mapping[str, str]) -> Iterator[Item]:
        items, self._items = self._items, []
        yield from items
        if self.files is not None and not items:  # a webhook request does not wait for the folder
            yield from self.files.read(checkpoints)

    def close(self) -> None:
        if self.files is not None:
            self.files.close()


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
