"""The language-model artifact: a directory with the model, its config and its tokenizer.

Layout::

    lm_model.json    manifest: format, the LMConfig, training facts
    model.pt         state dict of the TransformerLM
    tokenizer.json   the HF ``tokenizers`` file the model was trained with
    cross_head.pt    (cross-encoders only) state dict of the score head on the pooled states

:func:`load_lm` takes a directory or an MLflow URI (``runs:/<run_id>/lm``), through the same
resolver as the ranking models (:func:`ltr.artifact.resolve_artifact_dir`).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ltr import __version__
from ltr.artifact import ArtifactError, resolve_artifact_dir
from ltr.config import from_dict
from ltr.lm.model import LMConfig, TransformerLM
from ltr.lm.tokenizer import TextTokenizer

LM_MANIFEST = "lm_model.json"
LM_WEIGHTS = "model.pt"
TOKENIZER = "tokenizer.json"
CROSS_HEAD = "cross_head.pt"
LM_FORMAT = "ltr-lm"
LM_FORMAT_VERSION = 1


@dataclass
class LoadedLM:
    """A language model ready for inference (eval mode, CPU), its tokenizer and its facts."""

    model: TransformerLM
    tokenizer: TextTokenizer
    training: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None
    head: torch.nn.Linear | None = None
    """A cross-encoder's score head (:mod:`ltr.text.cross`); None for a language model or a
    bi-encoder."""

    @property
    def is_cross(self) -> bool:
        """Whether this model scores (query, document) pairs read together."""
        return self.head is not None

    def to(self, device: torch.device | str) -> LoadedLM:
        self.model.to(device)
        if self.head is not None:
            self.head.to(device)
        return self


def save_lm(
    model: TransformerLM,
    tokenizer: TextTokenizer,
    directory: str | Path,
    training: dict[str, Any] | None = None,
    *,
    head: torch.nn.Linear | None = None,
) -> Path:
    """Write the model, its tokenizer and manifest to ``directory`` (each file replaced
    atomically, the manifest last, so a reader never sees a manifest without its files);
    ``head``: a cross-encoder's score head, saved beside the model."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    if tokenizer.vocab_size != model.config.vocab_size:
        raise ArtifactError(
            f"the tokenizer has {tokenizer.vocab_size} tokens but the model "
            f"{model.config.vocab_size}: they do not belong together"
        )
    tmp = directory / f".{LM_WEIGHTS}.tmp"
    torch.save(model.state_dict(), tmp)
    tmp.replace(directory / LM_WEIGHTS)
    tmp = directory / f".{TOKENIZER}.tmp"
    tokenizer.save(tmp)
    tmp.replace(directory / TOKENIZER)
    if head is not None:
        tmp = directory / f".{CROSS_HEAD}.tmp"
        torch.save({k: v.detach().cpu() for k, v in head.state_dict().items()}, tmp)
        tmp.replace(directory / CROSS_HEAD)
    else:
        (directory / CROSS_HEAD).unlink(missing_ok=True)
    manifest = {
        "format": LM_FORMAT,
        "format_version": LM_FORMAT_VERSION,
        "config": dataclasses.asdict(model.config),
        "training": training or {},
        "architecture": "cross" if head is not None else "lm",
        "ltr_version": __version__,
    }
    tmp = directory / f".{LM_MANIFEST}.tmp"
    tmp.write_text(json.dumps(manifest, indent=2, sort_keys=True))
    tmp.replace(directory / LM_MANIFEST)
    return directory


def load_lm(source: str | Path) -> LoadedLM:
    """Load a language model from a directory written by ``ltr pretrain`` or an MLflow URI."""
    path, _ = resolve_artifact_dir(source, manifest=LM_MANIFEST)
    data = json.loads((path / LM_MANIFEST).read_text())
    if data.get("format") != LM_FORMAT:
        raise ArtifactError(f"{path / LM_MANIFEST} is not an ltr language-model manifest")
    if int(data.get("format_version", 0)) > LM_FORMAT_VERSION:
        raise ArtifactError(f"{path} was written by a newer ltr; upgrade ltr to load it")
    for name in (LM_WEIGHTS, TOKENIZER):
        if not (path / name).exists():
            raise ArtifactError(f"{path} has a manifest but no {name}")
    config = from_dict(LMConfig, data["config"], where="config")
    model = TransformerLM(config)
    state = torch.load(path / LM_WEIGHTS, map_location="cpu", weights_only=True)
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise ArtifactError(f"{path / LM_WEIGHTS} does not match its manifest: {exc}") from None
    model.eval()
    tokenizer = TextTokenizer.load(path / TOKENIZER)
    head = None
    architecture = data.get("architecture", "lm")
    if architecture == "cross":
        head = _load_head(path / CROSS_HEAD, config.d_model)
    elif architecture != "lm":
        raise ArtifactError(
            f"{path / LM_MANIFEST}: unknown architecture {architecture!r} (lm or cross)"
        )
    return LoadedLM(model, tokenizer, dict(data.get("training", {})), path, head)


def _load_head(path: Path, d_model: int) -> torch.nn.Linear:
    if not path.exists():
        raise ArtifactError(f"{path.parent} is a cross-encoder but has no {path.name}")
    head = torch.nn.Linear(d_model, 1)
    state = torch.load(path, map_location="cpu", weights_only=True)
    try:
        head.load_state_dict(state)
    except RuntimeError as exc:
        raise ArtifactError(f"{path} does not match its model: {exc}") from None
    return head.eval()
