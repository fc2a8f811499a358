"""Errors of the reranking service, free of gRPC (``ltr.serve.status`` maps them to status codes).

Bad requests are :class:`ltr.errors.InputError`; the rest are here.
"""

from __future__ import annotations

from ltr.errors import LtrError


class UnknownModelError(LtrError, LookupError):
    """A request asked for a model this server does not serve."""


class QueueFullError(LtrError):
    """The request queue is at capacity; the call was refused without waiting."""


class DeadlineExpiredError(LtrError):
    """The caller's deadline passed before the request was scored; it was not computed."""


class ShuttingDownError(LtrError):
    """The server is draining for shutdown and accepts no new calls."""


class TextNotServedError(LtrError):
    """A text request reached a server whose model came without a text featurizer."""


class ClicksNotRecordedError(LtrError):
    """Clicks reached a server that keeps no impression log, so no click log either."""
