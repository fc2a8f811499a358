"""The one place that maps errors to gRPC status codes.

=====================================  ======================  ==============================
error                                  status code             typical cause
=====================================  ======================  ==============================
:class:`ltr.errors.InputError`         ``INVALID_ARGUMENT``    bad features, ids, list size
:class:`~ltr.serve.errors.UnknownModelError`  ``NOT_FOUND``    model_name of another model
:class:`~ltr.serve.errors.TextNotServedError`  ``FAILED_PRECONDITION``  text, no featurizer
:class:`~ltr.serve.errors.ClicksNotRecordedError`  ``FAILED_PRECONDITION``  no impression log
:class:`~ltr.serve.errors.QueueFullError`     ``RESOURCE_EXHAUSTED``  overload
:class:`~ltr.serve.errors.DeadlineExpiredError`  ``DEADLINE_EXCEEDED``  waited past deadline
:class:`~ltr.serve.errors.ShuttingDownError`  ``UNAVAILABLE``  draining after SIGTERM
anything else                          ``INTERNAL``            a bug; details only in the log
=====================================  ======================  ==============================

Messages over the size limit are refused by gRPC itself with ``RESOURCE_EXHAUSTED``.
"""

from __future__ import annotations

import logging

import grpc

from ltr.errors import InputError
from ltr.serve.errors import (
    ClicksNotRecordedError,
    DeadlineExpiredError,
    QueueFullError,
    ShuttingDownError,
    TextNotServedError,
    UnknownModelError,
)

log = logging.getLogger("ltr.serve")

STATUS_CODES: dict[type[Exception], grpc.StatusCode] = {
    InputError: grpc.StatusCode.INVALID_ARGUMENT,
    UnknownModelError: grpc.StatusCode.NOT_FOUND,
    TextNotServedError: grpc.StatusCode.FAILED_PRECONDITION,
    ClicksNotRecordedError: grpc.StatusCode.FAILED_PRECONDITION,
    QueueFullError: grpc.StatusCode.RESOURCE_EXHAUSTED,
    DeadlineExpiredError: grpc.StatusCode.DEADLINE_EXCEEDED,
    ShuttingDownError: grpc.StatusCode.UNAVAILABLE,
}


def status_of(exc: BaseException) -> tuple[grpc.StatusCode, str]:
    """The status code and message a caller gets for ``exc``.

    Known errors keep their one-sentence message; anything else is ``INTERNAL`` with a generic
    message (the traceback goes to the server log, not to the caller).
    """
    for kind, code in STATUS_CODES.items():
        if isinstance(exc, kind):
            return code, str(exc)
    log.error("internal error while serving a call", exc_info=exc)
    return grpc.StatusCode.INTERNAL, "internal error in the reranker; see the server log"
