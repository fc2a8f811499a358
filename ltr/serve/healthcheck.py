"""Container health check: exit 0 if the server's gRPC health service says SERVING, else 1.

Run: ``python -m ltr.serve.healthcheck [HOST:PORT] [--service NAME] [--ca F --cert F --key F]``
(used by ``deploy/Dockerfile`` and ``deploy/compose.yaml``; Kubernetes uses its native gRPC
probes instead). It prints the status (``UNREACHABLE`` when the server did not answer) and, when
it did not answer, why on stderr, as far as gRPC tells.
"""

from __future__ import annotations

import argparse
import sys

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

PROG = "python -m ltr.serve.healthcheck"


def probe(
    target: str,
    service: str = "",
    *,
    timeout: float = 3.0,
    credentials: grpc.ChannelCredentials | None = None,
) -> tuple[str, grpc.RpcError | None]:
    """The health status name of ``service`` at ``target`` and, for ``UNREACHABLE`` (no
    answer), gRPC's error."""
    channel = (
        grpc.insecure_channel(target)
        if credentials is None
        else grpc.secure_channel(target, credentials)
    )
    with channel:
        stub = health_pb2_grpc.HealthStub(channel)
        try:
            reply = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=timeout)
        except grpc.RpcError as exc:
            return "UNREACHABLE", exc
    return health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status), None


def check(
    target: str,
    service: str = "",
    *,
    timeout: float = 3.0,
    credentials: grpc.ChannelCredentials | None = None,
) -> str:
    """The health status name of ``service`` at ``target`` (``UNREACHABLE`` if no answer)."""
    return probe(target, service, timeout=timeout, credentials=credentials)[0]


def why_unreachable(target: str, exc: grpc.RpcError, *, tls: bool, client_cert: bool) -> str:
    """One sentence on why ``target`` did not answer, from gRPC's error and the options given.

    A server that closes the connection at once ("Socket closed") is one that speaks TLS to a
    plaintext client or, to a TLS client without a certificate, one that requires a client
    certificate (mutual TLS): gRPC's error does not tell these from other closures, so the
    sentence says what to check.
    """
    details = (exc.details() or "") if isinstance(exc, grpc.Call) else str(exc)
    code = exc.code() if isinstance(exc, grpc.Call) else None
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return f"{target} did not answer in time; is the server overloaded, or still starting?"
    if "Connection refused" in details:
        return f"nothing listens on {target}; is the server running, on that port?"
    if "CERTIFICATE_VERIFY_FAILED" in details:
        return (
            f"the certificate of the server at {target} is not signed by the CA given as --ca "
            "(or does not name that host); pass the CA that signed it"
        )
    if "Socket closed" in details:
        if not tls:
            return (
                f"the server at {target} closed the connection: it speaks TLS; pass --ca (and "
                "--cert and --key if it requires a client certificate)"
            )
        if not client_cert:
            return (
                f"the server at {target} closed the connection during the TLS handshake: it "
                "requires a client certificate (mutual TLS); pass --cert and --key"
            )
        return (
            f"the server at {target} closed the connection during the TLS handshake: it did not "
            "accept the client certificate given as --cert (is it signed by the server's client "
            "CA?)"
        )
    return f"{target} did not answer: {code.name if code else 'error'}: {details}"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog=PROG, description=__doc__)
    p.add_argument("target", nargs="?", default="localhost:50051")
    p.add_argument("--service", default="", help="service name ('' = the whole server)")
    p.add_argument("--timeout", type=float, default=3.0)
    p.add_argument("--ca")
    p.add_argument("--cert")
    p.add_argument("--key")
    args = p.parse_args(argv)
    credentials = None
    tls = bool(args.ca or args.cert)
    if tls:
        from ltr.errors import ConfigError
        from ltr.serve.tls import channel_credentials

        try:
            credentials = channel_credentials(args.ca, args.cert, args.key)
        except ConfigError as exc:  # a missing or non-PEM file, a --cert without --key
            p.error(str(exc))
    status, error = probe(args.target, args.service, timeout=args.timeout, credentials=credentials)
    print(status)
    if error is not None:
        why = why_unreachable(args.target, error, tls=tls, client_cert=args.cert is not None)
        print(f"{PROG}: {why}", file=sys.stderr)
    return 0 if status == "SERVING" else 1


if __name__ == "__main__":
    sys.exit(main())
