"""TLS and mutual TLS credentials from PEM files, for the server and for clients."""

from __future__ import annotations

from pathlib import Path

import grpc

from ltr.errors import ConfigError
from ltr.serve.config import TlsConfig


def read_pem(path: str | Path, what: str) -> bytes:
    """The bytes of a PEM file; a missing or unreadable file is a one-line ConfigError."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read the {what} file {path}: {exc.strerror}") from None
    if b"-----BEGIN" not in data:
        raise ConfigError(f"the {what} file {path} is not PEM (no -----BEGIN line)")
    return data


def server_credentials(tls: TlsConfig) -> grpc.ServerCredentials | None:
    """Credentials for the serving port, or None when TLS is off.

    With ``client_ca`` the server requires and verifies a client certificate (mutual TLS).
    """
    if not tls.enabled:
        return None
    assert tls.cert is not None and tls.key is not None
    pair = (read_pem(tls.key, "tls.key"), read_pem(tls.cert, "tls.cert"))
    if tls.client_ca is None:
        return grpc.ssl_server_credentials([pair])
    ca = read_pem(tls.client_ca, "tls.client_ca")
    return grpc.ssl_server_credentials([pair], root_certificates=ca, require_client_auth=True)


def channel_credentials(
    ca: str | Path | None = None, cert: str | Path | None = None, key: str | Path | None = None
) -> grpc.ChannelCredentials:
    """Client credentials: trust ``ca`` (None = system roots); ``cert``+``key`` for mutual TLS."""
    if (cert is None) != (key is None):
        raise ConfigError("a client certificate and its key must be given together")
    return grpc.ssl_channel_credentials(
        root_certificates=read_pem(ca, "CA") if ca is not None else None,
        private_key=read_pem(key, "client key") if key is not None else None,
        certificate_chain=read_pem(cert, "client certificate") if cert is not None else None,
    )
