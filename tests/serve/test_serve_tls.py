"""TLS and mutual TLS on real servers, with a throwaway CA made here with ``cryptography``."""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import subprocess
from pathlib import Path

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from ltr.serve._proto.ltr.reranker.v1 import reranker_pb2 as pb
from ltr.serve._proto.ltr.reranker.v1 import reranker_pb2_grpc as pb_grpc
from ltr.serve.healthcheck import main as healthcheck
from tests.serve._helpers import LTR, ServerProcess


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _write(path: Path, key, cert: x509.Certificate) -> tuple[Path, Path]:
    key_path, cert_path = path.with_suffix(".key"), path.with_suffix(".pem")
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return cert_path, key_path


def make_ca(folder: Path, cn: str):
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(_name(cn))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, _ = _write(folder / cn, key, cert)
    return key, cert, cert_path


def issue(folder: Path, cn: str, ca_key, ca_cert, *, server: bool) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    )
    if server:
        names = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return _write(folder / cn, key, builder.sign(ca_key, hashes.SHA256()))


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    folder = tmp_path_factory.mktemp("pki")
    ca_key, ca_cert, ca = make_ca(folder, "test-ca")
    _, _, rogue_ca = make_ca(folder, "rogue-ca")
    server_cert, server_key = issue(folder, "server", ca_key, ca_cert, server=True)
    client_cert, client_key = issue(folder, "client", ca_key, ca_cert, server=False)
    return {
        "ca": ca, "rogue_ca": rogue_ca, "server_cert": server_cert, "server_key": server_key,
        "client_cert": client_cert, "client_key": client_key,
    }  # fmt: skip


def creds(pki, *, ca: str = "ca", client: bool = False) -> grpc.ChannelCredentials:
    return grpc.ssl_channel_credentials(
        root_certificates=pki[ca].read_bytes(),
        private_key=pki["client_key"].read_bytes() if client else None,
        certificate_chain=pki["client_cert"].read_bytes() if client else None,
    )


@pytest.fixture(scope="module")
def servers(tmp_path_factory, tiny_artifact, pki):
    """A TLS server and a mutual-TLS server, started side by side."""
    tmp = tmp_path_factory.mktemp("tls")
    common = ("--backend", "torch", "--tls.cert", str(pki["server_cert"]),
              "--tls.key", str(pki["server_key"]))  # fmt: skip
    tls = ServerProcess(tmp, tiny_artifact, *common, credentials=creds(pki))
    mtls = ServerProcess(
        tmp, tiny_artifact, *common, "--tls.client_ca", str(pki["ca"]),
        credentials=creds(pki, client=True),
    )  # fmt: skip
    try:
        yield tls.wait_ready(), mtls.wait_ready()
    finally:
        for server in (tls, mtls):
            assert server.stop() == 0, server.log()


def model_info(target: str, credentials: grpc.ChannelCredentials | None) -> pb.ModelInfo:
    channel = (
        grpc.insecure_channel(target)
        if credentials is None
        else grpc.secure_channel(target, credentials)
    )
    with channel:
        return pb_grpc.RerankerStub(channel).GetModelInfo(pb.GetModelInfoRequest(), timeout=10)


def refused(target: str, credentials: grpc.ChannelCredentials | None) -> grpc.StatusCode:
    with pytest.raises(grpc.RpcError) as info:
        model_info(target, credentials)
    return info.value.code()


def test_tls_admits_clients_that_trust_the_ca_and_refuses_plaintext(servers, pki) -> None:
    tls, _ = servers
    assert model_info(tls.target, creds(pki)).num_features == 46
    assert refused(tls.target, None) == grpc.StatusCode.UNAVAILABLE
    assert refused(tls.target, creds(pki, ca="rogue_ca")) == grpc.StatusCode.UNAVAILABLE


def test_mutual_tls_refuses_clients_without_a_certificate(servers, pki) -> None:
    _, mtls = servers
    assert model_info(mtls.target, creds(pki, client=True)).num_features == 46
    assert refused(mtls.target, creds(pki)) == grpc.StatusCode.UNAVAILABLE
    assert refused(mtls.target, None) == grpc.StatusCode.UNAVAILABLE


def test_ltr_rerank_speaks_mutual_tls(servers, pki, mq2008_dir) -> None:
    _, mtls = servers
    base = [str(LTR), "rerank", "--server", mtls.target, "--data", str(mq2008_dir / "S5.txt.xz"),
            "--top-k", "3", "--format", "json", "--ca", str(pki["ca"])]  # fmt: skip
    ok = subprocess.run(
        [*base, "--cert", str(pki["client_cert"]), "--key", str(pki["client_key"])],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert ok.returncode == 0, ok.stderr
    assert len(json.loads(ok.stdout)["candidates"]) == 3
    no_cert = subprocess.run(base, capture_output=True, text=True, timeout=120)
    assert no_cert.returncode == 2
    assert no_cert.stderr.startswith("ltr rerank: error: UNAVAILABLE")
    assert len(no_cert.stderr.strip().splitlines()) == 1
    assert f"listening on {mtls.target} with TLS, its certificate signed by the CA" in (
        no_cert.stderr
    )


def test_healthcheck_says_why_a_tls_server_did_not_answer(servers, pki, capsys) -> None:
    tls, mtls = servers
    ca, cert, key = str(pki["ca"]), str(pki["client_cert"]), str(pki["client_key"])

    def unreachable(*argv: str) -> str:
        assert healthcheck([*argv, "--timeout", "10"]) == 1
        out, err = capsys.readouterr()
        assert out.strip() == "UNREACHABLE"
        (line,) = err.strip().splitlines()
        return line

    assert healthcheck([mtls.target, "--ca", ca, "--cert", cert, "--key", key]) == 0
    assert capsys.readouterr().out.strip() == "SERVING"
    assert unreachable(mtls.target, "--ca", ca) == (
        f"python -m ltr.serve.healthcheck: the server at {mtls.target} closed the connection "
        "during the TLS handshake: it requires a client certificate (mutual TLS); pass --cert "
        "and --key"
    )
    assert unreachable(tls.target).endswith("it speaks TLS; pass --ca (and --cert and --key if "
                                             "it requires a client certificate)")  # fmt: skip
    assert "is not signed by the CA given as --ca" in unreachable(
        tls.target, "--ca", str(pki["rogue_ca"])
    )
    with pytest.raises(SystemExit) as usage:  # a certificate without its key: a usage error
        healthcheck([mtls.target, "--ca", ca, "--cert", cert])
    assert usage.value.code == 2
    assert "a client certificate and its key must be given together" in capsys.readouterr().err
