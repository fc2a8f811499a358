"""Model updates on a real server that polls a real ``mlflow server`` registry.

Three versions of one registered model: 1 and 2 are good, 3 is broken. The server polls the alias
``live``; moving it must switch versions without failing a call, a broken version must leave the
old one serving, and SIGHUP must reload on demand.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time

import numpy as np
import pytest
from mlflow import MlflowClient

from ltr.artifact import load_model
from ltr.serve._proto.ltr.reranker.v1 import reranker_pb2 as pb
from ltr.serve._proto.ltr.reranker.v1 import reranker_pb2_grpc as pb_grpc
from ltr.tracking import start_run
from tests.serve._helpers import (
    LTR,
    ServerProcess,
    free_port,
    make_artifact,
    metric,
    offline_scores,
)

NAME = "tiny-ranker"


@pytest.fixture(scope="module")
def registry(tmp_path_factory, s1, mlflow_server):
    """Versions 1, 2 (good) and 3 (weights that do not fit the manifest) of NAME; live -> 1."""
    root = tmp_path_factory.mktemp("registry")
    uri = mlflow_server
    folders = {}
    for version, seed in (("1", 11), ("2", 12), ("3", 13)):
        folder = make_artifact(root / f"v{version}", s1, seed=seed)
        if version == "3":
            manifest = json.loads((folder / "ltr_model.json").read_text())
            manifest["model_config"]["d_model"] = 32  # the weights are for d_model 16
            (folder / "ltr_model.json").write_text(json.dumps(manifest))
        with start_run(experiment="serve-tests", tracking_uri=uri) as run:
            logged = run.log_model(
                folder, feature_names=list(s1.feature_names), registered_name=NAME
            )
        assert logged.registered_version == version
        folders[version] = folder
    client = MlflowClient(tracking_uri=uri)
    client.set_registered_model_alias(NAME, "live", "1")
    return root, uri, client, folders


def request_of(s5, q: int) -> pb.RerankRequest:
    rows = s5[q].rows
    return pb.RerankRequest(
        candidates=[pb.Candidate(id=f"r{r}", features=s5.features[r].tolist()) for r in rows]
    )


def wait_for(condition, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met in time")
        time.sleep(0.1)


def test_alias_moves_reload_failures_and_sighup(registry, s5) -> None:
    root, uri, client, folders = registry
    server = ServerProcess(
        root, f"models:/{NAME}@live", "--backend", "torch", "--reload.poll_seconds", "0.5",
        env={"MLFLOW_TRACKING_URI": uri},
    ).wait_ready()  # fmt: skip
    try:
        channel = server.channel()
        stub = pb_grpc.RerankerStub(channel)
        q = 4
        request = request_of(s5, q)
        seen: list[tuple[str, dict[str, float]]] = []
        errors: list[Exception] = []
        stop = threading.Event()

        def hammer() -> None:
            while not stop.is_set():
                try:
                    reply = stub.Rerank(request, timeout=30)
                    seen.append((reply.model.version, {c.id: c.score for c in reply.candidates}))
                except Exception as exc:  # every failure is reported by the assertion below
                    errors.append(exc)

        worker = threading.Thread(target=hammer)
        worker.start()
        wait_for(lambda: len(seen) >= 5)
        client.set_registered_model_alias(NAME, "live", "2")
        wait_for(lambda: seen[-1][0] == "2")
        count = len(seen)
        wait_for(lambda: len(seen) >= count + 5)
        stop.set()
        worker.join()

        assert errors == []
        versions = [v for v, _ in seen]
        assert versions[0] == "1" and versions[-1] == "2"
        assert versions == sorted(versions)  # one switch, never back
        for version in ("1", "2"):
            offline = offline_scores(load_model(folders[version]).model, s5)
            want = {f"r{r}": offline[r] for r in s5[q].rows}
            got = next(scores for v, scores in seen if v == version)
            np.testing.assert_allclose([got[k] for k in want], list(want.values()), atol=1e-5)

        # a version that fails to load leaves version 2 serving
        client.set_registered_model_alias(NAME, "live", "3")
        wait_for(lambda: metric(server.scrape(), "ltr_model_reloads_total", outcome="failed") >= 1)
        assert stub.Rerank(request, timeout=30).model.version == "2"
        assert stub.GetModelInfo(pb.GetModelInfoRequest(), timeout=10).model.version == "2"
        assert "does not match its manifest" in server.log()

        # SIGHUP reloads now (polling never reloads the version already in use)
        client.set_registered_model_alias(NAME, "live", "2")
        time.sleep(1.0)  # two poll periods: polling sees version 2 in use and does nothing
        assert metric(server.scrape(), "ltr_model_reloads_total", outcome="swapped") == 1
        server.signal(signal.SIGHUP)
        wait_for(lambda: metric(server.scrape(), "ltr_model_reloads_total", outcome="swapped") == 2)
        assert stub.Rerank(request, timeout=30).model.version == "2"
        samples = server.scrape()
        assert metric(samples, "ltr_model_info", name=NAME, version="2", backend="torch") == 1
        assert metric(samples, "ltr_model_info", name=NAME, version="1", backend="torch") == 0
        channel.close()
        assert server.stop() == 0
    finally:
        server.kill()


def test_a_missing_alias_or_model_is_a_one_line_error_naming_what_is_there(registry) -> None:
    root, uri, client, _ = registry
    live = client.get_model_version_by_alias(NAME, "live").version  # the module's tests move it

    def refused(*argv: str) -> str:
        done = subprocess.run(
            [str(LTR), "serve", *argv, "--backend", "torch", "--host", "127.0.0.1",
             "--port", str(free_port()), "--metrics-port", "0"],
            capture_output=True, text=True, timeout=300, cwd=root,
            env={**os.environ, "MLFLOW_TRACKING_URI": uri},
        )  # fmt: skip
        assert done.returncode == 2, done.stderr
        assert "Traceback" not in done.stderr
        return done.stderr.strip().splitlines()[-1]

    line = refused("--model", f"models:/{NAME}@nope")
    assert line.startswith(f"ltr serve: error: cannot resolve model models:/{NAME}@nope: ")
    assert line.endswith(
        f"; {NAME} has aliases: live (version {live}); point one at a version with "
        f"`ltr registry alias {NAME} ALIAS VERSION` or `ltr registry promote`"
    )
    line = refused("--model", f"models:/{NAME}@live", "--challenger", "models:/no-such@live")
    assert line.startswith("ltr serve: error: cannot resolve model models:/no-such@live: ")
    assert NAME in line  # the names the registry has
