"""Submission statuses, their order, and the kinds of record the archive keeps chains for."""

from __future__ import annotations

from enum import StrEnum
from typing import Final


class Status(StrEnum):
    """Where a chain stands. A status never moves backwards: the higher rank wins."""

    RECEIVED = "received"
    DEADLETTERED = "deadlettered"
    REJECTED = "rejected"
    ACCEPTED = "accepted"
    ROUTED = "routed"
    NOTIFICATION_DEFERRED = "notification_deferred"
    NOTIFICATION_FAILED = "notification_failed"
    NOTIFIED = "notified"


RANK: Final[dict[Status, int]] = {status: rank for rank, status in enumerate(Status)}
"""received 0 < deadlettered 1 < rejected 2 < accepted 3 < routed 4 < notification_deferred 5 <
notification_failed 6 < notified 7. Every status has its own rank, so "the highest-ranked
snapshot" is one document. Snapshots stored before `notification_deferred` existed carry the
ranks of then (failed 5, notified 6): readers order snapshots by their `status` (`rank_of`)."""

STATUS_AT: Final[dict[int, Status]] = {rank: status for status, rank in RANK.items()}
"""The status of each rank."""


class RecordType(StrEnum):
    """What a chain is about. A chain is keyed by `submission_id` (or a Kafka position)."""

    SUBMISSION = "submission"
    """Events about one submission (accepted or rejected by intake, then routed, notified)."""
    RECEIPT = "receipt"
    """A raw message as read from `feedback.submissions.v1`, keyed by its Kafka position."""
    DEADLETTER = "deadletter"
    """A dead letter of a message that had no submission yet, keyed by its source position."""


def rank_of(status: object, stored_rank: object) -> int:
    """Return the rank of a stored snapshot: from its status when known, else its stored rank."""
    if isinstance(status, str) and status in _BY_VALUE:
        return RANK[_BY_VALUE[status]]
    return stored_rank if isinstance(stored_rank, int) else -1


_BY_VALUE: Final[dict[str, Status]] = {status.value: status for status in Status}
