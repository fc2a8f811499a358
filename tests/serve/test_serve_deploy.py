"""Deployment files parse and say what they must (no container engine runs here).

Checks structure, not a cluster: kinds, gRPC probes on the serving port, resource requests, the
drain window, and a compose file wiring PostgreSQL -> MLflow -> reranker.
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from ltr.serve.config import ServeConfig, load_serve_config
from ltr.serve.healthcheck import main as healthcheck
from tests.serve._helpers import free_port

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
DEFAULTS = ServeConfig()


def k8s() -> dict[str, dict]:
    docs = {}
    for path in sorted((DEPLOY / "k8s").glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            docs[doc["kind"]] = doc
    return docs


def test_kubernetes_deployment_service_and_autoscaler() -> None:
    docs = k8s()
    assert set(docs) == {"Deployment", "Service", "HorizontalPodAutoscaler"}
    deployment, service, hpa = docs["Deployment"], docs["Service"], docs["HorizontalPodAutoscaler"]
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"grpc": DEFAULTS.port, "metrics": DEFAULTS.metrics_port}
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["grpc"]["port"] == DEFAULTS.port, probe
    assert container["readinessProbe"]["grpc"]["service"] == "ltr.reranker.v1.Reranker"
    assert {"cpu", "memory"} <= set(container["resources"]["requests"])
    assert pod["terminationGracePeriodSeconds"] > DEFAULTS.drain_seconds
    assert pod["securityContext"]["runAsNonRoot"] is True
    labels = deployment["spec"]["selector"]["matchLabels"]
    assert deployment["spec"]["template"]["metadata"]["labels"] == labels
    assert service["spec"]["selector"] == labels
    assert {p["targetPort"] for p in service["spec"]["ports"]} == set(ports)
    target = hpa["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", deployment["metadata"]["name"])
    assert (
        hpa["spec"]["minReplicas"] >= 1 and hpa["spec"]["maxReplicas"] > hpa["spec"]["minReplicas"]
    )
    env = {e["name"]: e["value"] for e in container["env"]}
    config = load_serve_config(None, env={k: v for k, v in env.items() if k.startswith("LTR_")})
    assert config.model == env["LTR_SERVE_MODEL"]


def test_compose_runs_mlflow_on_postgres_and_the_reranker_against_it() -> None:
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    services = compose["services"]
    assert set(services) == {"postgres", "mlflow", "reranker"}
    mlflow, reranker = services["mlflow"], services["reranker"]
    assert mlflow["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert reranker["depends_on"]["mlflow"]["condition"] == "service_healthy"
    store = mlflow["command"][mlflow["command"].index("--backend-store-uri") + 1]
    assert store.startswith("postgresql://") and "@postgres:5432/" in store
    env = reranker["environment"]
    assert env["MLFLOW_TRACKING_URI"] == "http://mlflow:5000"
    config = load_serve_config(None, env={k: v for k, v in env.items() if k.startswith("LTR_")})
    assert config.model.startswith("models:/") and "@" in config.model
    assert f"{config.port}:{config.port}" in reranker["ports"]
    assert reranker["healthcheck"]["test"][1:4] == ["python", "-m", "ltr.serve.healthcheck"]
    for name, service in services.items():
        if "build" in service:
            assert (DEPLOY / service["build"]["context"] / service["build"]["dockerfile"]).exists()
        assert "healthcheck" in service, name


def test_dockerfile_pins_cpu_torch_first_and_runs_unprivileged() -> None:
    text = (DEPLOY / "Dockerfile").read_text()
    lines = [
        line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")
    ]
    assert lines[0] == "FROM python:3.11-slim"
    runs = [line for line in lines if line.startswith("RUN ")]
    assert "TORCH_SPEC" in runs[0] and "whl/cpu" in text  # torch before the package
    assert any("pip install ." in r for r in runs[1:])
    user = next(line for line in lines if line.startswith("USER "))
    assert not user.split()[1].startswith(("0", "root"))
    assert re.search(rf"EXPOSE {DEFAULTS.port} {DEFAULTS.metrics_port}", text)
    assert "ltr.serve.healthcheck" in next(line for line in lines if "CMD [" in line)
    for copied in re.findall(r"^COPY (\S+)", text, flags=re.M):
        assert (DEPLOY.parent / copied).exists(), copied


def test_healthcheck_fails_when_nothing_listens(capsys) -> None:
    port = free_port()
    assert healthcheck([f"127.0.0.1:{port}", "--timeout", "1"]) == 1
    out, err = capsys.readouterr()
    assert out.strip() == "UNREACHABLE"
    assert err.strip() == (
        f"python -m ltr.serve.healthcheck: nothing listens on 127.0.0.1:{port}; is the server "
        "running, on that port?"
    )
