"""Which failures are whose fault, and how long to wait before trying again.

Every failure falls in one of three classes (`classify`), and each class has one treatment:

- **transient**: the same call may succeed later without anyone changing anything (a broker,
  database or mail server that is down, slow or busy). Retried with backoff while the partition
  waits, then rewound and fetched again.
- **system-wide**: the same call will keep failing for *every* message until an operator acts
  (wrong credentials, a revoked ACL, a full disk, a dead-letter topic that cannot be written).
  It is no message's fault either, so it is held and retried exactly like a transient failure,
  but it is also logged at error level and raised as a metric an alert fires on
  (`SadaSystemWideFailure`): waiting alone will not clear it. Never dead-lettered: doing so would
  empty every topic into the dead-letter topic during an operator's mistake.
- **per-message**: everything else is a property of the message and goes to the dead-letter
  topic, so the records behind it keep flowing.

`is_transient` answers "may retrying help, is the message innocent?", true for both of the first
two classes; `is_system_wide` singles out the second, for logs and alerts.
"""

from __future__ import annotations

import asyncio
import errno
from enum import StrEnum
from typing import Final

import aiosmtplib
from aiokafka import errors as kafka_errors
from pymongo import errors as mongo_errors
from tenacity import AsyncRetrying, retry_if_exception, stop_after_delay, wait_exponential_jitter


class Failure(StrEnum):
    """The three failure classes (see the module docstring)."""

    TRANSIENT = "transient"
    SYSTEM_WIDE = "system_wide"
    MESSAGE = "message"


class TransientError(Exception):
    """Raised by a service to say "retry this later"; the message is not at fault."""


class SystemWideError(Exception):
    """Raised by a service to say "nothing can succeed until an operator acts"."""


class DeadLetterUnavailableError(SystemWideError):
    """The dead-letter topic could not be written: the poison record is held, not skipped."""


_TRANSIENT_TYPES: tuple[type[BaseException], ...] = (
    TransientError,
    ConnectionError,
    TimeoutError,
    asyncio.TimeoutError,
    kafka_errors.KafkaConnectionError,
    kafka_errors.KafkaTimeoutError,
    kafka_errors.NodeNotReadyError,
    kafka_errors.RequestTimedOutError,
    kafka_errors.NotLeaderForPartitionError,
    kafka_errors.LeaderNotAvailableError,
    kafka_errors.NotEnoughReplicasError,
    kafka_errors.NotEnoughReplicasAfterAppendError,
    kafka_errors.ProducerClosed,
    mongo_errors.AutoReconnect,
    mongo_errors.ConnectionFailure,
    mongo_errors.ServerSelectionTimeoutError,
    mongo_errors.NetworkTimeout,
    mongo_errors.ExecutionTimeout,
    mongo_errors.WTimeoutError,
    aiosmtplib.SMTPConnectError,
    aiosmtplib.SMTPServerDisconnected,
    aiosmtplib.SMTPTimeoutError,
)

_SYSTEM_WIDE_TYPES: tuple[type[BaseException], ...] = (
    SystemWideError,
    # Kafka: an ACL or SASL credential that is wrong for this service, or a broker's full disk
    kafka_errors.TopicAuthorizationFailedError,
    kafka_errors.GroupAuthorizationFailedError,
    kafka_errors.ClusterAuthorizationFailedError,
    kafka_errors.TransactionalIdAuthorizationFailed,
    kafka_errors.DelegationTokenAuthorizationFailed,
    kafka_errors.SaslAuthenticationFailed,
    kafka_errors.AuthenticationFailedError,
    kafka_errors.KafkaStorageError,
    # SMTP: the relay refuses our login (535): every e-mail would fail the same way
    aiosmtplib.SMTPAuthenticationError,
    # a file or socket the process may not touch: configuration, not data
    PermissionError,
)

MONGO_SYSTEM_WIDE_CODES: Final = frozenset(
    {
        13,  # Unauthorized: the user lacks a privilege, or did not authenticate
        18,  # AuthenticationFailed: wrong user name or password
        14031,  # OutOfDiskSpace
    }
)
"""MongoDB error codes that say the deployment, not the document, is at fault."""

DISK_ERRNOS: Final = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS})
"""OS errors that say the disk (full, over quota, read-only) is at fault."""


def classify(exc: BaseException) -> Failure:
    """Return the failure class of `exc` (system-wide is checked first: it is the loudest)."""
    if is_system_wide(exc):
        return Failure.SYSTEM_WIDE
    if _is_transient_only(exc):
        return Failure.TRANSIENT
    return Failure.MESSAGE


def is_system_wide(exc: BaseException) -> bool:
    """Return True when `exc` will recur for every message until an operator acts."""
    if isinstance(exc, _SYSTEM_WIDE_TYPES):
        return True
    if isinstance(exc, mongo_errors.OperationFailure) and exc.code in MONGO_SYSTEM_WIDE_CODES:
        return True
    return isinstance(exc, OSError) and exc.errno in DISK_ERRNOS


def is_transient(exc: BaseException) -> bool:
    """Return True when `exc` says the infrastructure, not the message, is at fault.

    True for transient and system-wide failures alike: both are retried, neither dead-lettered.
    """
    return is_system_wide(exc) or _is_transient_only(exc)


MONGO_INTERRUPTED: Final = "context canceled"
"""FerretDB 1.24's message (code 1, InternalError) for a command cut off by its own shutdown: a
restart, not the document, is at fault (seen in the e2e suite while FerretDB restarted)."""


def _is_transient_only(exc: BaseException) -> bool:
    if isinstance(exc, _TRANSIENT_TYPES):
        return True
    if (
        isinstance(exc, mongo_errors.OperationFailure)
        and exc.code == 1
        and MONGO_INTERRUPTED in str(exc)
    ):
        return True
    if isinstance(exc, kafka_errors.KafkaError) and getattr(exc, "retriable", False):
        return True
    if isinstance(exc, mongo_errors.PyMongoError) and exc.has_error_label("RetryableWriteError"):
        return True
    if isinstance(exc, aiosmtplib.SMTPResponseException) and 400 <= exc.code < 500:
        return True
    return isinstance(exc, OSError) and not isinstance(exc, FileNotFoundError | PermissionError)


def backoff(hold_seconds: float, *, initial: float = 0.2, maximum: float = 10.0) -> AsyncRetrying:
    """Retry transient and system-wide failures with exponential backoff and jitter.

    Retries for up to `hold_seconds`; the final failure is re-raised so the caller can rewind its
    batch: a longer outage is then a series of these windows, each ending in a fresh fetch, never
    a hot loop.
    """
    return AsyncRetrying(
        retry=retry_if_exception(is_transient),
        wait=wait_exponential_jitter(multiplier=initial, max=maximum),
        stop=stop_after_delay(hold_seconds),
        reraise=True,
    )
