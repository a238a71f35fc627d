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
    GROUPED = "grouped"
    NOTIFICATION_DEFERRED = "notification_deferred"
    NOTIFICATION_FAILED = "notification_failed"
    NOTIFIED = "notified"


RANK: Final[dict[Status, int]] = {status: rank for rank, status in enumerate(Status)}
"""received 0 < deadlettered 1 < rejected 2 < accepted 3 < routed 4 < grouped 5 <
notification_deferred 6 < notification_failed 7 < notified 8. Every status has its own rank, so
"the highest-ranked snapshot" is one document. Snapshots stored before a status was added carry
the ranks of then (before `notification_deferred`: failed 5, notified 6; before `grouped`:
deferred 5, failed 6, notified 7): readers order snapshots by their `status` (`rank_of`).

A new status is only ever inserted below the ones whose ranks it shifts, so an old snapshot's
`_id` (`<submission>:<rank>:<revision>`) can only coincide with a new snapshot of a *lower*
status: that insert is refused as a duplicate and the higher status stays current."""

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
