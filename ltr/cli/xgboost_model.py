"""``ltr xgboost-model``: an XGBoost model (``rank:ndcg``, say) saved as a model artifact, served,
exported, evaluated and interleaved like any ``ltr`` model (see ``lightgbm_model.py``).

    ltr xgboost-model lambdamart.json runs/lambdamart --like data/mq2008/S1.txt.xz
"""

from __future__ import annotations

import argparse

from ltr.cli.lightgbm_model import add_tree_command


def register(sub: argparse._SubParsersAction) -> None:
    add_tree_command(
        sub,
        "xgboost-model",
        library="XGBoost",
        booster_help="XGBoost model file, JSON (Booster.save_model('model.json'))",
        score="its margin (predict(output_margin=True)), over every tree",
        refused="categorical splits, dart and gblinear boosters, several classes or targets",
        example="lambdamart.json",
        save="save_xgboost_model",
    )
