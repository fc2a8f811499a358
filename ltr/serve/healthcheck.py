"""Container health check: exit 0 if the server's gRPC health service says SERVING, else 1.

Run: ``python -m ltr.serve.healthcheck [HOST:PORT] [--service NAME] [--ca F --cert F --key F]``
(used by ``deploy/Dockerfile`` and ``deploy/compose.yaml``; Kubernetes uses its native gRPC
probes instead).
"""

from __future__ import annotations

import argparse
import sys

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc


def check(
    target: str,
    service: str = "",
    *,
    timeout: float = 3.0,
    credentials: grpc.ChannelCredentials | None = None,
) -> str:
    """The health status name of ``service`` at ``target`` (``UNREACHABLE`` if no answer)."""
    channel = (
        grpc.insecure_channel(target)
        if credentials is None
        else grpc.secure_channel(target, credentials)
    )
    with channel:
        stub = health_pb2_grpc.HealthStub(channel)
        try:
            reply = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=timeout)
        except grpc.RpcError:
            return "UNREACHABLE"
    return health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m ltr.serve.healthcheck", description=__doc__)
    p.add_argument("target", nargs="?", default="localhost:50051")
    p.add_argument("--service", default="", help="service name ('' = the whole server)")
    p.add_argument("--timeout", type=float, default=3.0)
    p.add_argument("--ca")
    p.add_argument("--cert")
    p.add_argument("--key")
    args = p.parse_args(argv)
    credentials = None
    if args.ca or args.cert:
        from ltr.serve.tls import channel_credentials

        credentials = channel_credentials(args.ca, args.cert, args.key)
    status = check(args.target, args.service, timeout=args.timeout, credentials=credentials)
    print(status)
    return 0 if status == "SERVING" else 1


if __name__ == "__main__":
    sys.exit(main())
