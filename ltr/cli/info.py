"""``ltr info``: what a model artifact is, before it is served, promoted or compared.

    ltr info runs/demo/model_run/model
    ltr info models:/ltr-mq2008-setrank@champion --format json

It says what the manifest and the files beside it hold: the architecture and its settings, the
parameters and the arithmetic of one list, the features, the training data, loss and test
metrics, the MLflow run, and whether the artifact carries an ONNX graph (``ltr export``), a
feature profile (``ltr drift``) and a text featurizer (``RerankText``).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import textwrap
from pathlib import Path
from typing import Any


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "info",
        help="what a model artifact is: architecture, size, features, training, files (rankers "
        "and language models)",
        description="Describe a model artifact (a folder, runs:/<id>/model or "
        "models:/<name>@<alias>): its architecture and settings, parameters and the MFLOP of "
        "the matrix products for one list of 10, 100 and 1,000 candidates, the features it "
        "reads, how it was trained (data, loss, best epoch, test metrics, MLflow run), its "
        "registry name and version, and which of the ONNX graph, the feature profile and a "
        "text featurizer it carries.",
        epilog="examples: ltr info models:/ltr-mq2008-setrank@candidate; ltr info "
        "models:/ltr-mq2008-setrank@candidate --compare models:/ltr-mq2008-setrank@champion",
    )
    p.add_argument(
        "model", metavar="MODEL", help="artifact dir, runs:/<id>/model or models:/<name>@<alias>"
    )
    p.add_argument(
        "--compare",
        metavar="OTHER",
        help="instead, what differs from OTHER to MODEL (settings, size, features, training data, "
        "test metrics with their change, files), e.g. the champion against a candidate before "
        "promoting it",
    )
    p.add_argument("--format", choices=["text", "json"], default="text")
    p.set_defaults(func=run)


def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _mb(size: int) -> str:
    if size >= 1e6:
        return f"{size / 1e6:.2f} MB"
    return f"{size / 1e3:.1f} kB" if size >= 1e3 else f"{size} bytes"


def describe(loaded) -> dict[str, Any]:
    """What :func:`run` prints, as a JSON-ready dict."""
    from ltr.artifact import BUNDLED_FEATURIZER, ONNX, WEIGHTS
    from ltr.drift import FeatureProfile
    from ltr.inference import mflop_per_list
    from ltr.models.ensemble import ENSEMBLE
    from ltr.models.gbdt import GBDT

    m = loaded.manifest
    path = loaded.path
    parameters = sum(p.numel() for p in loaded.model.parameters())
    info: dict[str, Any] = {
        "source": loaded.source,
        "path": str(path),
        "registered_model": m.name,
        "served_name": loaded.served_name,
        "version": loaded.served_version,
        "architecture": m.architecture,
        "model_config": {k: v for k, v in m.model_config.items() if k != "members"},
        "parameters": parameters,
        "mflop_per_list": (
            None
            if m.architecture == GBDT
            else (m.mflop_per_list or mflop_per_list(loaded.model, m))
        ),
        "features": list(m.feature_names),
        "uses_initial_rank": m.uses_initial_rank,
        "context_dim": m.context_dim,
        "normalizer": m.normalizer,
        "training": {k: v for k, v in m.training.items() if k not in ("members", "data_sketch")},
        "ltr_version": m.ltr_version,
        "files": {
            "weights": _size(path / WEIGHTS),
            "onnx": _size(path / ONNX) if (path / ONNX).is_file() else None,
            "featurizer": (
                _size(path / BUNDLED_FEATURIZER) if (path / BUNDLED_FEATURIZER).is_dir() else None
            ),
        },
    }
    try:
        profile = FeatureProfile.load(path, m.feature_names)
    except Exception as exc:  # a broken profile is worth reporting, not a failure of `info`
        info["feature_profile"] = {"error": str(exc)}
    else:
        info["feature_profile"] = (
            None
            if profile is None
            else {
                "rows": profile.rows,
                "source": list(profile.source),
                "scores": profile.score is not None,
            }
        )
    if m.architecture == ENSEMBLE:
        info["members"] = m.training.get("members", [])
        info["model_config"]["members"] = len(m.model_config.get("members", []))
    return info


def _settings(config: dict[str, Any]) -> str:
    skip = {"num_features", "use_initial_rank", "context_dim"}
    return ", ".join(f"{k}={v}" for k, v in sorted(config.items()) if k not in skip) or "-"


def _metrics(metrics: dict[str, Any] | None) -> str | None:
    """The test metrics as one line: the ``empty=1`` convention (lists with no relevant item
    count 1, the README's and ``make demo``'s headline), in ``ltr evaluate``'s order."""
    from ltr.metrics import DEFAULT_METRICS

    if not metrics:
        return None
    convention = "empty=1" if "empty=1" in metrics else next(iter(metrics))
    values = metrics[convention]
    if not isinstance(values, dict):  # a flat {metric: value}
        convention, values = "", metrics
    order = [m for m in DEFAULT_METRICS if m in values] + sorted(set(values) - set(DEFAULT_METRICS))
    line = ", ".join(f"{name} {values[name]:.4f}" for name in order)
    return f"{line} ({convention})" if convention else line


def _head(info: dict[str, Any]) -> list[str]:
    """The source, and the local folder it resolved to when that differs (an MLflow URI)."""
    lines = [info["source"]]
    if info["source"] != info["path"]:
        lines.append(f"  {'folder':<14}{info['path']}")
    return lines


def _wrapped(lines: list[str]) -> str:
    """``lines`` wrapped at 100 characters, continuations under the values."""
    wrap = {"width": 100, "subsequent_indent": " " * 16, "break_long_words": False}
    return "\n".join(part for line in lines for part in textwrap.wrap(line, **wrap))


def format_text(info: dict[str, Any]) -> str:
    lines = _head(info)
    lines.append(
        f"  {'served as':<14}{info['served_name']}, version {info['version']} (the name and "
        "version responses carry)"
    )
    lines.append(f"  {'architecture':<14}{info['architecture']}: {_settings(info['model_config'])}")
    weights = info["training"].get("linear_weights")
    if weights:  # `ltr linear-model`
        formula = " + ".join(f"{w:g} x {f}" for f, w in weights.items())
        lines.append(f"  {'':<14}a hand-set linear scorer: score = {formula}")
    for member in info.get("members", []):
        run = f", run {member['run_id']}" if member.get("run_id") else ""
        lines.append(f"  {'':<14}member {member['source']} ({member['architecture']}{run})")
    size = f"{info['parameters']:,} parameters"
    if info["mflop_per_list"]:
        size += "; MFLOP per list of " + ", ".join(
            f"{int(n):,}: {v:.3g}" for n, v in info["mflop_per_list"].items()
        )
    lines.append(f"  {'size':<14}{size}")
    names = info["features"]
    shown = ", ".join(names) if len(names) <= 8 else f"{', '.join(names[:4])}, ..., {names[-1]}"
    extra = []
    if info["uses_initial_rank"]:
        extra.append("initial rank")
    if info["context_dim"]:
        extra.append(f"a context vector of {info['context_dim']}")
    also = f"; also reads {' and '.join(extra)}" if extra else ""
    lines.append(f"  {'features':<14}{len(names)} ({shown}){also}")
    norm = info["normalizer"]
    if norm.get("enabled"):
        text = "fitted on the training data" + (", after log1p" if norm.get("log1p") else "")
    else:
        text = "none (raw features)"
    lines.append(f"  {'normaliser':<14}{text}")
    training = info["training"]
    data = training.get("data") or {}
    for split in ("train", "valid", "test"):
        if data.get(split):
            lines.append(f"  {split + ' data':<14}{', '.join(map(str, data[split]))}")
    if training.get("loss"):
        loss = training["loss"]
        name = loss.get("name", loss) if isinstance(loss, dict) else loss
        epoch = training.get("best_epoch")
        lines.append(
            f"  {'loss':<14}{name}" + (f" (best epoch {epoch})" if epoch is not None else "")
        )
    metrics = _metrics(training.get("test_metrics"))
    if metrics:
        lines.append(f"  {'test':<14}{metrics}")
    if training.get("run_id"):
        lines.append(f"  {'MLflow run':<14}{training['run_id']}")
    files = info["files"]
    onnx = (
        f"model.onnx, {_mb(files['onnx'])} (checked against PyTorch when exported)"
        if files["onnx"]
        else "not exported (`ltr export`, or `ltr serve` exports it)"
    )
    lines.append(f"  {'ONNX':<14}{onnx}")
    profile = info["feature_profile"]
    if profile is None:
        text = "none: not drift-monitored (`ltr drift --save-profile` writes one)"
    elif "error" in profile:
        text = f"unusable: {profile['error']}"
    else:
        scores = " and the model's scores of them" if profile["scores"] else ""
        text = (
            f"of {profile['rows']:,} training rows{scores} (`ltr drift`, the server's drift gauges)"
        )
    lines.append(f"  {'profile':<14}{text}")
    if files["featurizer"]:
        lines.append(f"  {'featurizer':<14}bundled, {_mb(files['featurizer'])} (reranks texts)")
    lines.append(
        f"  {'files':<14}weights {_mb(files['weights'])}; written by ltr {info['ltr_version']}"
    )
    return _wrapped(lines)


def describe_lm(loaded, source: str) -> dict[str, Any]:
    """What :func:`run` prints for a language model (``ltr pretrain``, ``ltr finetune``)."""
    from ltr.lm.artifact import LM_WEIGHTS

    config = dataclasses.asdict(loaded.model.config)
    return {
        "source": source,
        "path": str(loaded.path),
        "architecture": "cross-encoder" if loaded.is_cross else f"{config['kind']} LM",
        "model_config": config,
        "parameters": sum(p.numel() for p in loaded.model.parameters())
        + (sum(p.numel() for p in loaded.head.parameters()) if loaded.is_cross else 0),
        "tokenizer": {"kind": loaded.tokenizer.kind, "vocab_size": loaded.tokenizer.vocab_size},
        "training": loaded.training,
        "files": {"weights": _size(loaded.path / LM_WEIGHTS)},
    }


def format_lm(info: dict[str, Any]) -> str:
    lines = _head(info)
    lines.append(f"  {'architecture':<14}{info['architecture']}: {_settings(info['model_config'])}")
    lines.append(f"  {'size':<14}{info['parameters']:,} parameters")
    tok = info["tokenizer"]
    lines.append(f"  {'tokenizer':<14}{tok['kind']}, {tok['vocab_size']:,} tokens")
    training = info["training"]
    if training.get("data"):
        lines.append(f"  {'train data':<14}{', '.join(map(str, training['data']))}")
    for key, value in training.items():
        if key in ("data", "architecture"):  # the head's architecture line says it
            continue
        # a label as long as the column still gets a space before its value
        lines.append(f"  {key.replace('_', ' ') + ' ':<14}{_fact(value)}")
    lines.append(f"  {'files':<14}weights {_mb(info['files']['weights'])}")
    return _wrapped(lines)


def _fact(value: Any, shown: int = 5) -> str:
    """A training fact on one line: floats to 4 significant digits, integers with separators,
    mappings as ``key value`` pairs, and lists longer than ``shown`` (a cross-fitted model's
    held-out query ids) by their length and first items."""
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    if isinstance(value, dict):
        return ", ".join(f"{k} {_fact(v, shown)}" for k, v in value.items())
    if isinstance(value, list | tuple):
        items = [_fact(v, shown) for v in value[:shown]]
        more = f", ... ({len(value):,} in all)" if len(value) > shown else ""
        return f"[{', '.join(items)}{more}]"
    return str(value)


def _is_lm(source: str) -> bool:
    """Whether ``source`` is a language model rather than a ranker; neither raises the
    ranker's error (what most users look for), unless only the language model's names an
    artifact folder nearby."""
    from ltr.artifact import ArtifactError, resolve_artifact_dir
    from ltr.lm.artifact import LM_MANIFEST

    try:
        resolve_artifact_dir(source)
    except ArtifactError as ranker:
        try:
            resolve_artifact_dir(source, manifest=LM_MANIFEST)
        except ArtifactError as lm:
            raise (lm if lm.nearby and not ranker.nearby else ranker) from None
        return True
    return False


def _describe(source: str) -> tuple[dict[str, Any], Any]:
    """What ``source`` is (a ranker's or a language model's facts), and its text formatter."""
    from ltr.artifact import load_model

    if _is_lm(source):
        from ltr.lm.artifact import load_lm

        return describe_lm(load_lm(source), source), format_lm
    return describe(load_model(source)), format_text


UNCOMPARED = ("source", "path")
"""Facts that differ between any two sources, and are in the comparison's head instead."""


def _flat(info: dict[str, Any]) -> dict[str, Any]:
    """``info``'s facts as ``{dotted.key: value}`` (lists stay whole), less :data:`UNCOMPARED`."""
    from ltr.config import flatten

    return {key: value for key, value in flatten(info).items() if key not in UNCOMPARED}


def compare_infos(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """The facts that differ from ``old`` to ``new`` (:func:`describe`'s dicts):
    ``{"differ": {key: [old, new]}, "same": count}``; a fact one side lacks is None there."""
    a, b = _flat(old), _flat(new)
    keys = list(dict.fromkeys([*a, *b]))
    differ = {k: [a.get(k), b.get(k)] for k in keys if a.get(k) != b.get(k)}
    return {"differ": differ, "same": len(keys) - len(differ)}


def _value(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) >= 1 else f"{value:.4f}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    if isinstance(value, list) and len(value) > 4:
        return f"{len(value)} items ({', '.join(map(str, value[:3]))}, ...)"
    return json.dumps(value, default=str) if isinstance(value, (list, dict)) else str(value)


def _change(old: Any, new: Any) -> str:
    """``old -> new``, with the difference of two numbers and the names a list of names
    (features, files) gained and lost."""
    text = f"{_value(old)} -> {_value(new)}"
    numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (old, new))
    if numbers:
        delta = new - old
        text += f" ({delta:+.4f})" if isinstance(delta, float) else f" ({delta:+,})"
    elif all(isinstance(v, list) and all(isinstance(x, str) for x in v) for v in (old, new)):
        gained = [x for x in new if x not in old]
        lost = [x for x in old if x not in new]
        parts = [f"{label} {', '.join(map(str, items[:5]))}" + (", ..." if len(items) > 5 else "")
                 for label, items in (("gains", gained), ("loses", lost)) if items]  # fmt: skip
        text += f" ({'; '.join(parts) or 'the same items, reordered'})"
    return text


def format_comparison(old: dict[str, Any], new: dict[str, Any], diff: dict[str, Any]) -> str:
    head = [
        f"from {old['source']}",
        f"to   {new['source']}",
        f"{len(diff['differ'])} fact(s) differ, {diff['same']} are the same",
    ]
    width = max((len(k) for k in diff["differ"]), default=0) + 2
    lines = [f"  {key:<{width}}{_change(a, b)}" for key, (a, b) in diff["differ"].items()]
    wrap = {"width": 100, "subsequent_indent": " " * (width + 2), "break_long_words": False}
    return "\n".join(head + [part for line in lines for part in textwrap.wrap(line, **wrap)])


def run(args: argparse.Namespace) -> int:
    info, text = _describe(args.model)
    if args.compare:
        other, _ = _describe(args.compare)
        diff = compare_infos(other, info)
        if args.format == "json":
            print(json.dumps({"from": args.compare, "to": args.model, **diff}, indent=1,
                             default=str))  # fmt: skip
        else:
            print(format_comparison(other, info, diff))
        return 0
    print(json.dumps(info, indent=1, default=str) if args.format == "json" else text(info))
    return 0
