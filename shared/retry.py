"""Which failures are transient, and how long to wait before trying again.

Transient means "the same call may succeed later without anyone changing the message":
a broker, database or mail server that is down, slow or busy. Everything else is a property
of the message and goes to the dead-letter topic instead of being retried.
"""

from __future__ import annotations

import asyncio

import aiosmtplib
from aiokafka import errors as kafka_errors
from pymongo import errors as mongo_errors
from tenacity import AsyncRetrying, retry_if_exception, stop_after_delay, wait_exponential_jitter


class TransientError(Exception):
    """Raised by a service to say "retry this later"; the message is not at fault."""


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


def is_transient(exc: BaseException) -> bool:
    """Return True when `exc` says the infrastructure, not the message, is at fault."""
    if isinstance(exc, _TRANSIENT_TYPES):
        return True
    if isinstance(exc, kafka_errors.KafkaError) and getattr(exc, "retriable", False):
        return True
    if isinstance(exc, mongo_errors.PyMongoError) and exc.has_error_label("RetryableWriteError"):
        return True
    if isinstance(exc, aiosmtplib.SMTPResponseException) and 400 <= exc.code < 500:
        return True
    return isinstance(exc, OSError) and not isinstance(exc, FileNotFoundError | PermissionError)


def backoff(hold_seconds: float, *, initial: float = 0.2, maximum: float = 10.0) -> AsyncRetrying:
    """Retry transient failures with exponential backoff and jitter for up to `hold_seconds`.

    The final failure is re-raised so the caller can rewind its batch: a longer outage is then a
    series of these windows, each ending in a fresh fetch, never a hot loop.
    """
    return AsyncRetrying(
        retry=retry_if_exception(is_transient),
        wait=wait_exponential_jitter(multiplier=initial, max=maximum),
        stop=stop_after_delay(hold_seconds),
        reraise=True,
    )
