"""Kafka topic names of the v1 contract (docs/design.md, "Kafka topics").

A breaking change to a payload gets a new `.v2` topic rather than a new meaning for an old one.
"""

from typing import Final

SUBMISSIONS: Final = "feedback.submissions.v1"
ACCEPTED: Final = "feedback.accepted.v1"
REJECTED: Final = "feedback.rejected.v1"
ROUTED: Final = "feedback.routed.v1"
GROUPED: Final = "feedback.grouped.v1"
NOTIFICATIONS: Final = "feedback.notifications.v1"
DEADLETTER: Final = "feedback.deadletter.v1"

ALL: Final = (SUBMISSIONS, ACCEPTED, REJECTED, ROUTED, GROUPED, NOTIFICATIONS, DEADLETTER)
