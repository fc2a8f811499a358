"""A gradient-boosted tree ensemble (a LightGBM or XGBoost model) as a scorer, so that the ranker
already in production, a LambdaMART, is served, exported, evaluated and interleaved like any
``ltr`` model.

The trees are tensors, not code: every node of every tree is a slot of flat arrays (split
feature, threshold, left child, missing-value rule, leaf value; a node's right child is the slot
after its left one). A forward pass starts each (candidate, tree) pair at its tree's root and
takes ``depth`` steps, each one gathering the split feature's value and moving to a child; a
leaf's left child is itself and its threshold +inf, so a path that reaches its leaf early stays
there. The score is the sum of the leaves reached (plus a bias, XGBoost's base margin), in
float64 like LightGBM's own, rounded to float32. ``torch.onnx.export`` turns these gathers into
an ONNX graph (inside an ensemble); on its own, a tree model is exported as ONNX-ML's tree
operator instead (:mod:`ltr.export.gbdt`).

Decisions are LightGBM's (``Tree::NumericalDecision``): a NaN becomes 0 unless the node sends NaN
its default way; a node whose missing type is ``Zero`` sends values within 1e-35 of 0 (and NaN)
its default way, one whose type is ``NaN`` sends NaN its default way; otherwise ``x <= threshold``
goes left. Thresholds are stored as the largest float32 at or below LightGBM's double, so a
float32 feature (what every ``ltr`` path feeds) takes exactly the branch it takes in LightGBM.
XGBoost's trees (``x < threshold`` left, NaN the default way) are read into the same form
(:func:`from_xgboost`).

Categorical splits, linear trees and several scores per candidate are refused when a model is
read (:func:`from_lightgbm`, :func:`from_xgboost`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from ltr.errors import ConfigError, ConfigFieldError
from ltr.models._validate import check_bool, check_int, check_scorer_inputs

GBDT = "gbdt"
"""The manifest's ``architecture`` for a tree ensemble (not in :data:`ltr.models.MODELS`: it is
read from LightGBM, not trained)."""

ZERO_THRESHOLD = 1e-35
"""LightGBM's ``kZeroThreshold``: what a ``Zero`` missing type counts as zero."""

_MISSING_TYPES = {"None": 0, "Zero": 1, "NaN": 2}


@dataclass(frozen=True)
class GBDTConfig:
    """Shapes of :class:`GBDTScorer`'s node arrays (the trees themselves are its buffers)."""

    num_features: int
    num_trees: int
    nodes_per_tree: int
    """Slots per tree: the largest tree's node count (internal nodes + leaves)."""
    depth: int
    """Steps from a root to the deepest leaf of any tree (0 when every tree is one leaf)."""
    average_output: bool = False
    """Divide the sum by the number of trees (LightGBM's random-forest mode)."""
    bias: float = 0.0
    """Added to the sum of the leaves (XGBoost's base margin; LightGBM's is in its trees)."""
    zero_missing: bool = False
    """Whether any node treats zero as missing (missing type ``Zero``): the check is left out of
    the graph when none does."""
    context_dim: int = 0
    """Always 0 (trees read candidate features only); here for the common scorer interface."""

    def __post_init__(self) -> None:
        owner = "GBDTConfig"
        check_int(owner, "num_features", self.num_features, 1)
        check_int(owner, "num_trees", self.num_trees, 1)
        check_int(owner, "nodes_per_tree", self.nodes_per_tree, 1)
        check_int(owner, "depth", self.depth, 0)
        check_bool(owner, "average_output", self.average_output)
        check_bool(owner, "zero_missing", self.zero_missing)
        if isinstance(self.bias, bool) or not isinstance(self.bias, int | float):
            raise ConfigFieldError(owner, "bias", f"must be a number, got {self.bias!r}")
        if not np.isfinite(self.bias):
            raise ConfigFieldError(owner, "bias", f"must be finite, got {self.bias!r}")
        if self.context_dim != 0:
            raise ConfigFieldError(owner, "context_dim", f"must be 0, got {self.context_dim!r}")


class GBDTScorer(nn.Module):
    """Score each candidate by walking every tree of the ensemble (see the module docstring)."""

    def __init__(self, config: GBDTConfig) -> None:
        super().__init__()
        self.config = config
        n = config.num_trees * config.nodes_per_tree
        roots = torch.arange(config.num_trees, dtype=torch.long) * config.nodes_per_tree
        self.register_buffer("roots", roots)  # (T,)
        self.register_buffer("feature", torch.zeros(n, dtype=torch.long))  # (T*N,)
        # +inf at a leaf, so that a leaf always "goes left"
        self.register_buffer("threshold", torch.full((n,), torch.inf, dtype=torch.float32))
        # global slot of the left child (the right one is the next slot); a leaf's is itself
        self.register_buffer("left", torch.arange(n, dtype=torch.long))
        self.register_buffer("default_left", torch.zeros(n, dtype=torch.bool))
        self.register_buffer("missing_zero", torch.zeros(n, dtype=torch.bool))
        self.register_buffer("missing_nan", torch.zeros(n, dtype=torch.bool))
        self.register_buffer("value", torch.zeros(n, dtype=torch.float64))

    def set_features(self, columns: list[int], num_features: int) -> None:
        """Read the trees' feature ``j`` from column ``columns[j]`` of ``num_features``."""
        if len(columns) != self.config.num_features or not all(
            0 <= c < num_features for c in columns
        ):
            raise ConfigError(
                f"set_features needs a column in [0, {num_features}) for each of the "
                f"{self.config.num_features} features, got {columns}"
            )
        with torch.no_grad():
            self.feature.copy_(torch.tensor(columns, dtype=torch.long)[self.feature])
        self.config = replace(self.config, num_features=num_features)

    def forward(
        self,
        features: Tensor,
        mask: Tensor,
        initial_rank: Tensor | None = None,
        context: Tensor | None = None,
    ) -> Tensor:
        """Score each candidate.

        Args:
            features: ``[B, L, F]`` float candidate features (anything at padded slots).
            mask: ``[B, L]`` bool, True = real candidate.
            initial_rank: ignored (accepted for the common scorer signature).
            context: must be None (trees take no context vector).

        Returns:
            ``[B, L]`` float32 scores; values at padded slots are undefined.
        """
        c = self.config
        check_scorer_inputs("GBDTScorer", features, mask, c.num_features, context=context)
        b, length, f = features.shape
        x = features.masked_fill(~mask.unsqueeze(-1), 0.0).reshape(b * length, f)  # (M, F)
        node = self.roots.unsqueeze(0).expand(b * length, -1)  # (M, T)
        for _ in range(c.depth):
            v = torch.gather(x, 1, self.feature[node])  # (M, T) the split feature's values
            nan = torch.isnan(v)
            nan_default = self.missing_nan[node]  # (M, T)
            v = torch.where(nan & ~nan_default, torch.zeros_like(v), v)
            missing = nan & nan_default
            if c.zero_missing:
                missing = missing | (self.missing_zero[node] & (v.abs() <= ZERO_THRESHOLD))
            # (ONNX Runtime has no Where over booleans, hence and/or)
            go_left = (missing & self.default_left[node]) | (~missing & (v <= self.threshold[node]))
            node = self.left[node] + (~go_left).long()  # a leaf goes "left", to itself
        total = self.value[node].sum(dim=-1)  # (M,) float64
        if c.average_output:
            total = total / c.num_trees
        if c.bias:
            total = total + c.bias
        return total.to(features.dtype).reshape(b, length)  # (B, L)


# -- reading LightGBM -------------------------------------------------------------------------


@dataclass
class _Nodes:
    feature: list[int]
    threshold: list[float]
    left: list[int]  # local indices; the right child is left + 1
    default_left: list[bool]
    missing: list[int]
    value: list[float]

    def add(self) -> int:
        self.left.append(len(self.left))
        self.feature.append(0)
        self.threshold.append(float("inf"))
        self.default_left.append(False)
        self.missing.append(0)
        self.value.append(0.0)
        return len(self.value) - 1


def _float32_at_most(value: float) -> float:
    """The largest float32 that is <= ``value``: for a float32 ``x``, ``x <= value`` exactly when
    ``x <= _float32_at_most(value)``."""
    with np.errstate(over="ignore"):
        f = np.float32(value)
    if float(f) > value:
        f = np.nextafter(f, np.float32(-np.inf))
    return float(f)


def _read_tree(structure: dict[str, Any], where: str) -> tuple[_Nodes, int]:
    """A LightGBM ``tree_structure`` as node arrays (root at 0) and its depth."""
    nodes = _Nodes([], [], [], [], [], [])
    depth = 0
    stack = [(structure, nodes.add(), 0)]
    while stack:
        node, slot, level = stack.pop()
        if "leaf_coeff" in node or "leaf_const" in node:
            raise ConfigError(f"{where} is a linear tree (linear_tree=true); only constant leaves")
        if "split_feature" not in node:
            nodes.value[slot] = float(node["leaf_value"])
            depth = max(depth, level)
            continue
        if node.get("decision_type", "<=") != "<=":
            raise ConfigError(
                f"{where} splits on a categorical feature (feature {node['split_feature']}); "
                "ltr reads numerical splits only: train with the feature as a number"
            )
        nodes.feature[slot] = int(node["split_feature"])
        nodes.threshold[slot] = _float32_at_most(float(node["threshold"]))
        nodes.default_left[slot] = bool(node.get("default_left", True))
        nodes.missing[slot] = _MISSING_TYPES[str(node.get("missing_type", "None"))]
        left, right = nodes.add(), nodes.add()
        nodes.left[slot] = left
        stack.append((node["left_child"], left, level + 1))
        stack.append((node["right_child"], right, level + 1))
    return nodes, depth


def from_lightgbm(dump: dict[str, Any]) -> tuple[GBDTScorer, list[str] | None]:
    """A :class:`GBDTScorer` equal to a LightGBM model's raw score, and the model's feature names
    (None when they are LightGBM's defaults, ``Column_0``...: the columns are then read by
    position).

    Args:
        dump: ``lightgbm.Booster.dump_model()``'s dictionary.

    Raises:
        ConfigError: the model has no trees, several trees per iteration (a multi-class model),
            categorical splits or linear trees.
    """
    trees = dump.get("tree_info") or []
    if not trees:
        raise ConfigError("the LightGBM model has no trees")
    per_iteration = int(dump.get("num_tree_per_iteration", 1))
    if per_iteration != 1:
        raise ConfigError(
            f"the LightGBM model grows {per_iteration} trees per iteration (a multi-class "
            "model); a ranker has one score per candidate"
        )
    names = list(dump.get("feature_names") or [])
    num_features = int(dump.get("max_feature_idx", len(names) - 1)) + 1
    read = [
        _read_tree(t["tree_structure"], f"tree {t.get('tree_index', i)}")
        for i, t in enumerate(trees)
    ]
    scorer = _build(read, num_features, "LightGBM", bool(dump.get("average_output", False)))
    unnamed = names == [f"Column_{i}" for i in range(len(names))]
    return scorer, None if unnamed or not names else names


XGBOOST_MARGINS = {
    **dict.fromkeys(
        ("reg:squarederror", "reg:squaredlogerror", "reg:pseudohubererror", "reg:absoluteerror",
         "reg:quantileerror", "rank:ndcg", "rank:pairwise", "rank:map"),
        "identity",
    ),
    **dict.fromkeys(("binary:logistic", "reg:logistic", "binary:logitraw"), "logit"),
    **dict.fromkeys(("count:poisson", "reg:gamma", "reg:tweedie"), "log"),
}  # fmt: skip
"""XGBoost objectives ltr reads, and how each turns ``base_score`` into the margin it adds."""


def from_xgboost(model: dict[str, Any]) -> tuple[GBDTScorer, list[str] | None]:
    """A :class:`GBDTScorer` equal to an XGBoost model's margin (``predict(output_margin=True)``,
    every tree), and the model's feature names (None when it has none: read by position).

    XGBoost sends ``x < threshold`` left and a NaN its node's default way; the threshold kept is
    the float32 just below XGBoost's (float32) one, so ``x <= it`` is the same test.

    Args:
        model: the parsed JSON of ``Booster.save_model("model.json")``.

    Raises:
        ConfigError: not a ``gbtree`` model, several targets or classes, categorical splits, an
            objective whose base margin ltr does not know, or no trees.
    """
    try:
        learner = model["learner"]
        booster = learner["gradient_booster"]
        params = learner["learner_model_param"]
        objective = learner["objective"]["name"]
    except (KeyError, TypeError):
        raise ConfigError("not an XGBoost model (no learner in the JSON)") from None
    if booster.get("name") != "gbtree":
        raise ConfigError(
            f"the XGBoost model's booster is {booster.get('name')!r}; ltr reads gbtree models"
        )
    if int(params.get("num_class", 0)) > 1 or int(params.get("num_target", 1)) > 1:
        raise ConfigError(
            "the XGBoost model has several classes or targets; a ranker has one score per candidate"
        )
    if objective not in XGBOOST_MARGINS:
        raise ConfigError(
            f"the XGBoost objective {objective!r} is not one ltr reads; known: "
            f"{', '.join(sorted(XGBOOST_MARGINS))}"
        )
    trees = booster["model"]["trees"]
    if not trees:
        raise ConfigError("the XGBoost model has no trees")
    base = float(str(params.get("base_score", "0")).strip("[]"))
    margin = XGBOOST_MARGINS[objective]
    if margin == "logit":
        bias = float(np.log(base / (1.0 - base)))
    elif margin == "log":
        bias = float(np.log(base))
    else:
        bias = base
    read = [_read_tree(_xgboost_tree(tree, i), f"tree {i}") for i, tree in enumerate(trees)]
    num_features = int(params["num_feature"])
    scorer = _build(read, num_features, "XGBoost", False, bias=bias)
    names = list(learner.get("feature_names") or [])
    return scorer, names or None


def _xgboost_tree(tree: dict[str, Any], index: int) -> dict[str, Any]:
    """An XGBoost tree's arrays as LightGBM's nested ``tree_structure`` (``<=`` thresholds)."""
    if int(tree.get("tree_param", {}).get("size_leaf_vector", "1")) > 1:
        raise ConfigError(f"XGBoost tree {index} has vector leaves (a multi-target model)")
    left, right = tree["left_children"], tree["right_children"]
    cond, feature = tree["split_conditions"], tree["split_indices"]
    kinds, default_left = tree.get("split_type") or [0] * len(left), tree["default_left"]
    nodes: list[dict[str, Any]] = []
    for i in range(len(left)):
        if left[i] == -1:
            nodes.append({"leaf_value": float(cond[i])})
            continue
        if kinds[i] != 0:
            raise ConfigError(
                f"XGBoost tree {index} splits on a categorical feature (feature {feature[i]}); "
                "ltr reads numerical splits only"
            )
        below = np.nextafter(np.float32(cond[i]), np.float32(-np.inf))  # x < t iff x <= below
        nodes.append(
            {
                "split_feature": int(feature[i]),
                "threshold": float(below),
                "decision_type": "<=",
                "default_left": bool(default_left[i]),
                "missing_type": "NaN",
            }
        )
    for i, node in enumerate(nodes):
        if "split_feature" in node:
            node["left_child"], node["right_child"] = nodes[left[i]], nodes[right[i]]
    return nodes[0]


def _build(
    read: list[tuple[_Nodes, int]],
    num_features: int,
    library: str,
    average_output: bool,
    bias: float = 0.0,
) -> GBDTScorer:
    """The scorer holding trees read by :func:`_read_tree`."""
    width = max(len(nodes.value) for nodes, _ in read)
    config = GBDTConfig(
        num_features=num_features,
        num_trees=len(read),
        nodes_per_tree=width,
        depth=max(depth for _, depth in read),
        average_output=average_output,
        zero_missing=any(_MISSING_TYPES["Zero"] in nodes.missing for nodes, _ in read),
        bias=bias,
    )
    scorer = GBDTScorer(config)
    arrays = {
        name: getattr(scorer, name).clone()
        for name in ("feature", "threshold", "left", "default_left", "value")
    }
    missing = torch.zeros(config.num_trees * width, dtype=torch.long)
    for t, (nodes, _) in enumerate(read):
        base, n = t * width, len(nodes.value)
        span = slice(base, base + n)
        arrays["feature"][span] = torch.tensor(nodes.feature)
        arrays["threshold"][span] = torch.tensor(nodes.threshold, dtype=torch.float32)
        arrays["left"][span] = torch.tensor(nodes.left) + base
        arrays["default_left"][span] = torch.tensor(nodes.default_left)
        arrays["value"][span] = torch.tensor(nodes.value, dtype=torch.float64)
        missing[span] = torch.tensor(nodes.missing)
    if int(arrays["feature"].max()) >= num_features:
        raise ConfigError(
            f"the {library} model splits on feature {int(arrays['feature'].max())} but has "
            f"{num_features} features"
        )
    with torch.no_grad():
        for name, array in arrays.items():
            getattr(scorer, name).copy_(array)
        scorer.missing_zero.copy_(missing == _MISSING_TYPES["Zero"])
        scorer.missing_nan.copy_(missing == _MISSING_TYPES["NaN"])
    return scorer.eval()
