"""Stopping the notifier: ledger writes of e-mails already sent finish before MongoDB closes."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from dataclasses import dataclass, field

from services.notifier.delivery import Notifier
from services.notifier.ledger import LedgerEntry
from tests import notifier_support as support
from tests.component.test_notifier_service import FakeLedger, notifier


@dataclass
class StuckLedger(FakeLedger):
    """A ledger whose writes wait until the test lets them through."""

    writing: asyncio.Event = field(default_factory=asyncio.Event)
    release: asyncio.Event = field(default_factory=asyncio.Event)

    async def record_many(self, entries: Sequence[LedgerEntry]) -> None:
        self.writing.set()
        await self.release.wait()
        await super().record_many(entries)


async def test_a_batch_cancelled_at_the_graceful_timeout_still_has_its_ledger_write_drained() -> (
    None
):
    ledger = StuckLedger()
    event = support.grouped(support.ARABIC_SAMPLE)
    async with notifier(ledger=ledger) as h:
        batch = asyncio.create_task(h.deliver(event))
        await ledger.writing.wait()  # the e-mail is out, its ledger write under way
        batch.cancel()  # what the broker does to a batch still running at its graceful timeout
        with contextlib.suppress(asyncio.CancelledError):
            await batch
        assert len(h.mailer.sent) == 1
        the_notifier = h.app.state.notifier
        assert isinstance(the_notifier, Notifier)
        drain = asyncio.create_task(the_notifier.drain(30))
        for _ in range(5):
            await asyncio.sleep(0)
        assert not drain.done()  # shutdown waits for the write rather than closing MongoDB
        ledger.release.set()
        await drain
    (entry,) = ledger.entries.values()
    assert entry.status == "sent"
