"""The errors the core layer raises (requests, limits, access), with a ``detail`` safe to show a client.

They live here so that core imports nothing above it; ``app/errors.py`` maps these and the domain
errors of ``models`` to HTTP statuses in one place.
"""

from __future__ import annotations


class ServiceError(Exception):
    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class BadRequest(ServiceError):
    """The request is malformed (no file, broken multipart, bad parameter)."""


class UploadTooLarge(ServiceError):
    """The request body is larger than the configured byte limit."""


class QueueFull(ServiceError):
    """A queue or limit is full; the client should retry later."""

    def __init__(self, detail: str, retry_after_s: int | None = None) -> None:
        """``retry_after_s``: only when the wait is known (the rate limiter computes it); otherwise the
        answer carries CXR_RETRY_AFTER_S, the one setting for every Retry-After."""
        super().__init__(detail)
        self.retry_after_s = retry_after_s


class TooManyRequests(QueueFull):
    """A client went over its rate limit (429)."""


class Unauthorized(ServiceError):
    """No API key, or an unknown one (401)."""


class Forbidden(ServiceError):
    """A key whose role does not allow this endpoint (403)."""


class ConfigurationError(ServiceError):
    """The server's own configuration is unusable (the server refuses to start)."""
