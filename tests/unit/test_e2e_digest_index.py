"""The e2e proof reads a digest as a unit does: each item it lists, in its text or its CSV."""

from __future__ import annotations

import email
from email import policy
from email.message import EmailMessage

from tests import notifier_support as support
from tests.e2e.driver import digest_references


def _message(list_limit: int) -> tuple[EmailMessage, list[str]]:
    digest = support.sample_digest()
    composed = support.digest_composer().compose(digest, list_limit=list_limit)
    parsed = email.message_from_bytes(composed.data, policy=policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed, sorted(item.reference for item in digest.items)


def test_a_listed_digest_yields_each_item_of_its_text_and_not_a_campaigns_first_member() -> None:
    message, references = _message(list_limit=200)
    assert not list(message.iter_attachments())
    assert sorted(digest_references(message)) == references


def test_a_counted_digest_yields_the_rows_of_its_attached_list() -> None:
    message, references = _message(list_limit=2)
    assert list(message.iter_attachments())
    assert sorted(digest_references(message)) == references
