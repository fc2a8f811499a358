"""Errors map to gRPC status codes in one place; unknown errors hide their details."""

from __future__ import annotations

import grpc
import pytest

from ltr.errors import InputError
from ltr.serve.errors import (
    DeadlineExpiredError,
    QueueFullError,
    ShuttingDownError,
    TextNotServedError,
    UnknownModelError,
)
from ltr.serve.status import status_of


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (InputError("bad"), grpc.StatusCode.INVALID_ARGUMENT),
        (UnknownModelError("who"), grpc.StatusCode.NOT_FOUND),
        (QueueFullError("full"), grpc.StatusCode.RESOURCE_EXHAUSTED),
        (DeadlineExpiredError("late"), grpc.StatusCode.DEADLINE_EXCEEDED),
        (ShuttingDownError("bye"), grpc.StatusCode.UNAVAILABLE),
        (TextNotServedError("no featurizer"), grpc.StatusCode.FAILED_PRECONDITION),
    ],
)
def test_domain_errors_keep_their_message(error, code) -> None:
    assert status_of(error) == (code, str(error))


def test_anything_else_is_internal_without_details(caplog) -> None:
    code, message = status_of(KeyError("secret internals"))
    assert code == grpc.StatusCode.INTERNAL
    assert "secret" not in message and "server log" in message
    assert "secret internals" in caplog.text
