"""A tree ensemble's ONNX graph: ONNX-ML's ``TreeEnsembleRegressor``, which ONNX Runtime runs
in 0.4x to 0.7x of LightGBM's own predict time (``benchmarks/lightgbm_model``), rather than the
gathers the PyTorch module is made of (several times slower).

Same inputs and output as every ``ltr`` graph (``features [B, L, F]``, ``mask [B, L]`` ->
``scores [B, L]``). LightGBM's missing-value rules map onto the operator's one rule (a NaN
goes to the branch ``nodes_missing_value_tracks_true`` names):

* missing type ``NaN``: a NaN goes the node's default way;
* ``None``: LightGBM reads a NaN as 0, so a NaN goes the way 0 goes (``0 <= threshold``);
* ``Zero``: a value within 1e-35 of 0 is missing. The missing type belongs to a feature (its
  bin mapper), so the graph first turns such values of those features into NaN, which then go
  the node's default way.

The parity check of :func:`ltr.export.onnx.export_checked` compares this graph with the PyTorch
module, as for any model.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ltr.models.gbdt import ZERO_THRESHOLD, GBDTScorer

ML_DOMAIN = "ai.onnx.ml"
ML_OPSET = 3
ONNX_OPSET = 18


def _trees(scorer: GBDTScorer) -> dict[str, list]:
    """The ensemble as ``TreeEnsembleRegressor``'s attribute lists (each tree's nodes numbered
    from 0 in the order they are reached)."""
    n = scorer.config.nodes_per_tree
    feature = scorer.feature.tolist()
    threshold = scorer.threshold.tolist()
    left = scorer.left.tolist()  # the right child is left + 1; a leaf's left is itself
    default_left = scorer.default_left.tolist()
    nan_default = scorer.missing_nan.tolist()
    zero_default = scorer.missing_zero.tolist()
    value = scorer.value.tolist()
    out: dict[str, list] = {
        key: []
        for key in (
            "nodes_treeids",
            "nodes_nodeids",
            "nodes_featureids",
            "nodes_values",
            "nodes_modes",
            "nodes_truenodeids",
            "nodes_falsenodeids",
            "nodes_missing_value_tracks_true",
            "target_treeids",
            "target_nodeids",
            "target_ids",
            "target_weights",
        )
    }
    for t in range(scorer.config.num_trees):
        order = [t * n]  # global slots in the order reached
        local = {t * n: 0}
        for g in order:  # grows while it is read
            if left[g] != g:
                for child in (left[g], left[g] + 1):
                    local[child] = len(order)
                    order.append(child)
        for g in order:
            leaf = left[g] == g
            out["nodes_treeids"].append(t)
            out["nodes_nodeids"].append(local[g])
            out["nodes_featureids"].append(0 if leaf else feature[g])
            out["nodes_values"].append(0.0 if leaf else threshold[g])
            out["nodes_modes"].append("LEAF" if leaf else "BRANCH_LEQ")
            out["nodes_truenodeids"].append(0 if leaf else local[left[g]])
            out["nodes_falsenodeids"].append(0 if leaf else local[left[g] + 1])
            if leaf:
                tracks = 0
            elif nan_default[g] or zero_default[g]:
                tracks = int(default_left[g])
            else:
                tracks = int(threshold[g] >= 0.0)
            out["nodes_missing_value_tracks_true"].append(tracks)
            if leaf:
                out["target_treeids"].append(t)
                out["target_nodeids"].append(local[g])
                out["target_ids"].append(0)
                out["target_weights"].append(value[g])
    return out


def export_gbdt_graph(scorer: GBDTScorer, path: str | Path) -> Path:
    """Write ``scorer`` as an ONNX graph at ``path`` (no parity check)."""
    import onnx
    from onnx import TensorProto, helper

    c = scorer.config
    nodes = []
    consts = []

    def const(name: str, array: np.ndarray) -> str:
        consts.append(onnx.numpy_helper.from_array(array, name))
        return name

    nodes += [
        helper.make_node("Shape", ["features"], ["shape"]),
        helper.make_node(
            "Slice", ["shape", const("zero", np.array([0])), const("two", np.array([2]))], ["bl"]
        ),
        helper.make_node(
            "Reshape", ["features", const("rows_by_f", np.array([-1, c.num_features]))], ["rows"]
        ),
    ]
    rows = "rows"
    zero_features = np.zeros(c.num_features, dtype=bool)
    zero_features[scorer.feature[scorer.missing_zero].unique().numpy()] = True
    if zero_features.any():  # values near 0 of Zero-type features become NaN (missing)
        nodes += [
            helper.make_node("Abs", ["rows"], ["abs"]),
            helper.make_node(
                "LessOrEqual",
                ["abs", const("zero_at", np.array(ZERO_THRESHOLD, dtype=np.float32))],
                ["near_zero"],
            ),
            helper.make_node("And", ["near_zero", const("zero_features", zero_features)], ["gone"]),
            helper.make_node(
                "Where",
                ["gone", const("nan", np.array(np.nan, dtype=np.float32)), "rows"],
                ["rows_missing"],
            ),
        ]
        rows = "rows_missing"
    trees = _trees(scorer)
    for key in ("nodes_values", "target_weights"):  # doubles, so that the sum is LightGBM's
        trees[f"{key}_as_tensor"] = onnx.numpy_helper.from_array(
            np.asarray(trees.pop(key), dtype=np.float64)
        )
    nodes += [
        helper.make_node("Cast", [rows], ["rows64"], to=TensorProto.DOUBLE),
        helper.make_node(
            "TreeEnsembleRegressor",
            ["rows64"],
            ["summed64"],
            domain=ML_DOMAIN,
            n_targets=1,
            aggregate_function="AVERAGE" if c.average_output else "SUM",
            post_transform="NONE",
            base_values_as_tensor=onnx.numpy_helper.from_array(np.array([c.bias])),
            **trees,
        ),
        helper.make_node("Cast", ["summed64"], ["summed"], to=TensorProto.FLOAT),
        helper.make_node("Reshape", ["summed", "bl"], ["scores"]),
    ]
    graph = helper.make_graph(
        nodes,
        "ltr_gbdt",
        [
            helper.make_tensor_value_info(
                "features", TensorProto.FLOAT, ["batch", "list", c.num_features]
            ),
            helper.make_tensor_value_info("mask", TensorProto.BOOL, ["batch", "list"]),
        ],
        [helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["batch", "list"])],
        initializer=consts,
    )
    model = helper.make_model(
        graph,
        opset_imports=[
            helper.make_opsetid("", ONNX_OPSET),
            helper.make_opsetid(ML_DOMAIN, ML_OPSET),
        ],
        producer_name="ltr",
    )
    model.ir_version = 8
    onnx.checker.check_model(model)
    path = Path(path)
    onnx.save(model, str(path))
    return path
