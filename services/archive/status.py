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
    NOTIFICATION_FAILED = "notification_failed"
    NOTIFIED = "notified"


RANK: Final[dict[Status, int]] = {status: rank for rank, status in enumerate(Status)}
"""received 0 < deadlettered 1 < rejected 2 < accepted 3 < routed 4 < notification_failed 5 <
notified 6. Every status has its own rank, so "the highest-ranked snapshot" is one document."""

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
