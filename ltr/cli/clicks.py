"""``ltr clicks``: learn from clicks. Simulate a click log, estimate position bias, make labels."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

CLICK_MODELS = ("pbm", "trust")  # ltr.clicks.propensity.CLICK_MODELS, without importing numpy
SIMULATED = (*CLICK_MODELS, "cascade", "dbn", "ubm")
CASCADES = ("cascade", "dbn")  # users who read from the top and stop
SESSION_MODELS = (*CASCADES, "ubm")  # ltr.clicks.session_prior.SESSION_MODELS, likewise


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "clicks",
        help="click logs: simulate users, estimate position bias, make unbiased (IPS) labels",
        description="Learning to rank from clicks under the position-based click model, with or "
        "without trust bias, under a cascade (the dependent click model, or the dynamic "
        "Bayesian network), or under the user browsing model. "
        "`simulate` writes the click log of simulated users from judged data; `propensity` "
        "estimates how often each position is looked at, by EM, from a log whose rankings "
        "vary; `labels` turns a log into ltr Parquet for `ltr train`, with each document's "
        "inverse-propensity-weighted (or, under trust bias, affine-corrected) click rate as its "
        "label (or, with `labels --cascade`, its click rate when looked at; with `labels --dbn`, "
        "its rate of satisfying clicks when looked at; with `labels --ubm`, its click rate when "
        "looked at under the user browsing model); `join` turns a server's impression log "
        "(`ltr serve --impressions`) and the clicks users made into a click log and its "
        "features; `interleaving` says which of two interleaved models (`ltr serve "
        "--challenger`) users preferred. See docs/CLICKS.md.",
    )
    commands = p.add_subparsers(dest="clicks_command", metavar="STEP")
    commands.required = True
    _register_simulate(commands)
    _register_propensity(commands)
    _register_labels(commands)
    _register_compare(commands)
    _register_join(commands)
    _register_interleaving(commands)


def _add_impressions_and_clicks(p: argparse.ArgumentParser) -> None:
    """The inputs of ``join`` and ``interleaving``: a server's impression log, and the clicks."""
    p.add_argument(
        "impressions", nargs="+", type=Path, metavar="IMPRESSIONS",
        help="impression files or folders holding impressions-*.parquet",
    )  # fmt: skip
    p.add_argument(
        "--clicks",
        type=Path,
        help="the clicks: a Parquet, CSV or TSV file, or a folder of such files (default: the "
        "server's click log, IMPRESSIONS/clicks, of RecordClicks)",
    )


def clicks_of(args: argparse.Namespace) -> Path:
    """``--clicks``, else the click log of the one impression folder that has one."""
    from ltr.errors import ConfigError
    from ltr.serve.clicklog import FOLDER

    if args.clicks is not None:
        return args.clicks
    logs = [p / FOLDER for p in args.impressions if (p / FOLDER).is_dir()]
    if len(logs) != 1:
        found = "none of the impression folders has" if not logs else "several folders have"
        raise ConfigError(
            f"pass --clicks FILE_OR_FOLDER: {found} a click log ({FOLDER}/, written by a server "
            "that received RecordClicks)"
        )
    return logs[0]


def _register_interleaving(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser(
        "interleaving",
        help="which of two interleaved models users preferred (ltr serve --challenger)",
        description="Read the impression log of `ltr serve --challenger MODEL --impressions "
        "DIR` and the clicks users made (one row per click: the response's impression_id as "
        "`session`, and the clicked candidate's `doc_id`; Parquet, CSV or TSV). Each "
        "interleaved session's clicks are credited to the teams (model or challenger) that "
        "placed the clicked candidates; the team with more wins the session. Prints, per pair "
        "of model versions: sessions, sessions with clicks, wins of each, ties, the "
        "challenger's preference ((wins + ties/2) / sessions with clicks - 0.5, from -0.5 to "
        "0.5) and the two-sided sign test's p-value of the wins. The sign test holds for a "
        "number of sessions fixed in advance; to read the verdict as sessions come in and stop "
        "once it is clear, pass --sequential.",
        epilog="example: ltr clicks interleaving /var/log/ltr/impressions --clicks clicks.csv "
        "--max-position 10 --sequential",
    )
    _add_impressions_and_clicks(p)
    p.add_argument(
        "--max-position",
        type=int,
        help="credit only clicks at positions 1..K (the ones users could see)",
    )
    p.add_argument(
        "--alpha", type=float, default=0.05, help="significance level of the verdict (0.05)"
    )
    p.add_argument(
        "--sequential",
        action="store_true",
        help="decide by the anytime p-value (a mixture sequential probability ratio test), "
        "which stays valid however often the verdict is read as sessions come in, instead of "
        "the sign test's, which holds only for a number of sessions fixed in advance",
    )
    p.add_argument(
        "--effect",
        type=float,
        default=None,
        help="with --sequential: the preference the test is tuned to (default 0.05); smaller "
        "effects are found with fewer sessions when they are real, larger ones with more",
    )
    p.add_argument("--json", action="store_true", help="print the verdicts as JSON")
    p.add_argument(
        "--exit-code",
        action="store_true",
        help="exit 0 only if users preferred the challenger at --alpha, else 1 (errors: 2), "
        "for a promotion step: `... --exit-code && ltr registry promote NAME`; the log must "
        "hold one pair of versions",
    )
    p.set_defaults(func=run_interleaving)


def run_interleaving(args: argparse.Namespace) -> int:
    import json

    from ltr.clicks.interleaving import DEFAULT_EFFECT, interleaving_verdict, prior_strength
    from ltr.errors import ConfigError

    if not 0 < args.alpha < 1:
        raise ConfigError(f"--alpha must be between 0 and 1, got {args.alpha}")
    if args.effect is not None and not args.sequential:
        raise ConfigError("--effect tunes the sequential test; pass it with --sequential")
    effect = None
    if args.sequential:
        effect = DEFAULT_EFFECT if args.effect is None else args.effect
        prior_strength(effect)  # refuses an effect outside (0, 0.5) before reading the log
    verdicts = interleaving_verdict(
        args.impressions, clicks_of(args), max_position=args.max_position
    )
    if args.exit_code and len(verdicts) != 1:
        pairs = "; ".join(f"{v.challenger} against {v.model}" for v in verdicts)
        raise ConfigError(
            f"--exit-code needs a log of one pair of model versions; this one holds "
            f"{len(verdicts)}: {pairs} (pass only the files of one pair)"
        )
    preferred = verdicts[0].preferred(args.alpha, effect) == "challenger"
    outcome = (0 if preferred else 1) if args.exit_code else 0
    if args.json:
        print(json.dumps([v.to_dict(effect) for v in verdicts], indent=1))
        return outcome
    anytime = "" if effect is None else f" {'anytime p':>9}"
    # as wide as the longest name: a version may be a 32-character run id
    wm = max(24, *(len(v.model) for v in verdicts))
    wc = max(24, *(len(v.challenger) for v in verdicts))
    header = (
        f"{'model':<{wm}} {'challenger':<{wc}} {'sessions':>9} {'clicked':>8} {'model wins':>10} "
        f"{'chall. wins':>11} {'ties':>6} {'preference':>10} {'p-value':>9}{anytime}"
    )
    print(header)
    for v in verdicts:
        anytime = "" if effect is None else f" {v.anytime_p_value(effect):>9.2g}"
        print(
            f"{v.model:<{wm}} {v.challenger:<{wc}} {v.sessions:>9,} {v.clicked:>8,} "
            f"{v.model_wins:>10,} {v.challenger_wins:>11,} {v.ties:>6,} {v.preference:>+10.4f} "
            f"{v.p_value:>9.2g}{anytime}"
        )
    for v in verdicts:
        said = f"{v.challenger} against {v.model}:"
        p, which = (
            (v.p_value, "p")
            if effect is None
            else (v.anytime_p_value(effect), f"anytime p, effect {effect:g}")
        )
        better = v.preferred(args.alpha, effect)
        if better is not None:
            print(f"{said} users preferred the {better} ({which} = {p:.2g} < {args.alpha:g})")
        elif effect is None:
            print(
                f"{said} no preference shown at the {args.alpha:g} level ({which} = {p:.2g}); "
                "more sessions may tell, but reading again as they come in needs --sequential"
            )
        else:
            print(
                f"{said} no preference shown yet at the {args.alpha:g} level ({which} = "
                f"{p:.2g}); keep collecting sessions and read again"
            )
    return outcome


def _register_join(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser(
        "join",
        help="a server's impression log + the clicks users made -> a click log and features",
        description="Join the clicks a front end recorded (one row per click: the response's "
        "impression_id as `session`, and the clicked candidate's `doc_id`; Parquet, CSV or TSV) "
        "to the impression log of `ltr serve --impressions DIR`. Writes the click log (every "
        "logged impression with click 1 or 0) for `ltr clicks propensity`, `labels` and "
        "`compare`, and with --features-out one row per (qid, doc_id) with the features of its "
        "latest impression, for `ltr clicks labels --features`. Clicks on impressions the log "
        "lacks are left out and counted.",
        epilog="example: ltr clicks join /var/log/ltr/impressions --clicks clicks.csv --out "
        "runs/clicks/log.parquet --features-out runs/clicks/features.parquet --max-position 10",
    )
    _add_impressions_and_clicks(p)
    p.add_argument("--out", required=True, type=Path, metavar="LOG.parquet")
    p.add_argument("--features-out", type=Path, metavar="FEATURES.parquet")
    p.add_argument(
        "--max-position",
        type=int,
        help="keep only impressions at positions 1..K (the ones users could see)",
    )
    p.add_argument("--quiet", action="store_true", help="print nothing but errors")
    p.set_defaults(func=run_join)


def run_join(args: argparse.Namespace) -> int:
    from ltr.clicks.join import join_clicks

    summary = join_clicks(
        args.impressions,
        clicks_of(args),
        args.out,
        features_out=args.features_out,
        max_position=args.max_position,
    )
    if args.quiet:
        return 0
    print(
        f"{args.out}: {summary.impressions:,} impressions in {summary.sessions:,} sessions, "
        f"{summary.clicks:,} clicks"
    )
    if summary.unmatched_clicks:
        print(
            f"{summary.unmatched_clicks:,} clicks matched no logged impression (lists the log "
            "sampled out, clicks outside its time, or below --max-position) and were left out"
        )
    if args.features_out is not None:
        print(f"{args.features_out}: features of {summary.pairs:,} (qid, doc_id) pairs")
    return 0


def _register_simulate(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser(
        "simulate",
        help="click log of simulated users on a logging ranker's rankings of judged data",
        description="For every query of DATA, SESSIONS simulated users are each shown a ranking "
        "from the logging ranker (a feature, or a file of scores) and click under the "
        "position-based model: examination (1/k)^eta at position k, click of an examined "
        "document of grade y with probability noise + (1 - noise)(2^y - 1)/(2^max_grade - 1). "
        "With --click-model trust, users also trust the top: an examined document is clicked "
        "with probability eps+_k r + eps-_k (1 - r), r = (2^y - 1)/(2^max_grade - 1), "
        "eps+_k = 1 - (min(k, 20) + 1)/100 and eps-_k = false_click / min(k, 10). "
        "With --click-model cascade (the dependent click model), users read from the top, click "
        "an examined document with the PBM's probability above, and after a click read on with "
        "probability --continue-after-click (else they are done). "
        "With --click-model dbn (the dynamic Bayesian network), users read from the top, click "
        "as in the PBM, are satisfied by a click with probability (2^y - 1)/(2^max_grade - 1) "
        "and then done, and otherwise read on with probability --perseverance (else they give "
        "up). "
        "With --click-model ubm (the user browsing model), users look at position k with "
        "probability (1/(k - l))^eta, l the position of their last click above (0 if none), and "
        "click as in the PBM. "
        "With --temperature above 0 each session draws its own Plackett-Luce ranking from the "
        "scores, which propensity estimation needs. Writes a click log (session, qid, doc_id, "
        "position, click) with the simulation's parameters in its metadata.",
        epilog="example: ltr clicks simulate data/mq2008/S1.txt.xz --ranker-feature f25 "
        "--out clicks/S1.parquet",
    )
    p.add_argument("data", nargs="+", type=Path, metavar="DATA", help="judged LETOR/Parquet")
    p.add_argument("--out", required=True, type=Path, metavar="LOG.parquet")
    ranker = p.add_mutually_exclusive_group(required=True)
    ranker.add_argument(
        "--ranker-feature", metavar="NAME", help="rank by this feature (e.g. f25, BM25 in LETOR 4)"
    )
    ranker.add_argument(
        "--ranker-scores",
        type=Path,
        metavar="SCORES",
        help="rank by the `score` column of a Parquet file or `ltr score` output, joined by "
        "(qid, doc_id)",
    )
    ranker.add_argument(
        "--server",
        metavar="HOST:PORT",
        help="show each user the list a running `ltr serve` returns: one Rerank call per "
        "session, whose impression_id names the session (the server's --impressions log then "
        "holds what was shown; --clicks-out writes what a front end would record)",
    )
    p.add_argument("--sessions", type=int, default=100, help="users per query (default 100)")
    p.add_argument(
        "--temperature",
        type=float,
        help="Plackett-Luce temperature over the query's standardised scores; 0 = the same "
        "ranking in every session (default 1; not with --server, which ranks)",
    )
    p.add_argument("--top-k", type=int, help="show only the first K documents (default: all)")
    p.add_argument(
        "--eta",
        type=float,
        help="pbm, trust, ubm: position-bias exponent (ubm: of the distance to the last click; "
        "default 1)",
    )
    p.add_argument(
        "--click-model",
        choices=SIMULATED,
        default="pbm",
        help="pbm: position bias only (default); trust: position and trust bias; cascade: "
        "reading from the top, stopping after a click (dependent click model); dbn: reading "
        "from the top, stopping when satisfied or giving up (dynamic Bayesian network); ubm: "
        "attention that falls with the distance to the last click (user browsing model)",
    )
    p.add_argument(
        "--noise",
        type=float,
        help="pbm, cascade, dbn, ubm: click rate of examined irrelevant documents (0.1)",
    )
    p.add_argument(
        "--continue-after-click",
        type=float,
        metavar="LAMBDA",
        help="cascade: probability of reading on after a click (0.5; 0 = one click at most)",
    )
    p.add_argument(
        "--perseverance",
        type=float,
        metavar="GAMMA",
        help="dbn: probability of reading on when not satisfied (0.9; 1 = nobody gives up)",
    )
    p.add_argument(
        "--false-click",
        type=float,
        help="trust: click rate of an examined irrelevant document at the top (0.65)",
    )
    p.add_argument("--max-grade", type=float, help="the top grade (default: the data's highest)")
    p.add_argument("--seed", type=int, default=0)
    served = p.add_argument_group("with --server")
    served.add_argument(
        "--clicks-out",
        type=Path,
        metavar="CLICKS",
        help="also write the clicks alone, (session, doc_id), as .csv or .parquet: what a front "
        "end records, for `ltr clicks join`",
    )
    served.add_argument(
        "--record-clicks",
        action="store_true",
        help="also send the clicks back to the server (RecordClicks), as a front end would, "
        "into its click log: IMPRESSIONS/clicks",
    )
    served.add_argument(
        "--concurrency", type=int, default=8, help="queries in flight at once (default 8)"
    )
    served.add_argument("--timeout", type=float, default=60.0, help="seconds per call")
    served.add_argument("--ca", type=Path, help="CA certificate (PEM), connect with TLS")
    served.add_argument("--cert", type=Path, help="client certificate, for mutual TLS")
    served.add_argument("--key", type=Path, help="client key, for mutual TLS")
    p.add_argument("--quiet", action="store_true", help="print nothing but errors")
    p.set_defaults(func=run_simulate)


def _register_propensity(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser(
        "propensity",
        help="estimate examination probabilities by position from a click log (EM)",
        description="Estimate the position-based model's examination probability of every "
        "position shown in LOG, relative to position 1, by expectation-maximisation over "
        "impressions and clicks per (document, position). Documents must appear at more than "
        "one position: a log whose every session shows the same ranking is refused. With "
        "--click-model trust, estimates instead the click rates of relevant and irrelevant "
        "documents at every position (alpha_k + beta_k and beta_k), for the affine correction. "
        "With --features, relevance is shared between documents through a logistic regression "
        "on their features (regression EM), which needs far fewer sessions per query and works "
        "even when each query was seen once.",
    )
    p.add_argument("log", type=Path, metavar="LOG.parquet")
    p.add_argument(
        "--click-model",
        choices=CLICK_MODELS,
        default="pbm",
        help="pbm: P(click) = theta_k gamma_d (default); trust: alpha_k gamma_d + beta_k",
    )
    p.add_argument(
        "--features",
        nargs="+",
        type=Path,
        metavar="DATA",
        help="LETOR/Parquet features of the log's documents, joined by (qid, doc_id): "
        "regression EM (pbm only)",
    )
    p.add_argument("--out", required=True, type=Path, metavar="PROPENSITY.json")
    p.add_argument(
        "--pool-after",
        type=int,
        metavar="K",
        help="positions past K share parameters in buckets a quarter wider each, "
        "(K 1.25^(j-1), K 1.25^j] (default: 10 for trust, every position alone for pbm)",
    )
    p.add_argument("--max-iter", type=int, default=5000, help="most EM steps (default 5000)")
    p.add_argument(
        "--tol",
        type=float,
        default=1e-6,
        help="stop when no propensity (pbm: relative to position 1) moves more in a step",
    )
    p.add_argument("--quiet", action="store_true", help="print nothing but errors")
    p.set_defaults(func=run_propensity)


def _register_labels(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser(
        "labels",
        help="turn a click log into ltr Parquet whose labels are IPS-weighted click rates",
        description="Label every document LOG shows with the mean over its impressions of "
        "click / (the examination probability of the impression's position): an unbiased "
        "estimate of its click probability when examined. With a trust-bias propensity file "
        "the label is the affine correction, the mean of (click - beta_k) / alpha_k, "
        "negative values made 0. With --cascade, no propensities: the dependent click model "
        "is fitted to the sessions by EM and the label is the click rate when looked at; with "
        "--dbn, the dynamic Bayesian network is, and the label is the rate of satisfying clicks "
        "when looked at (attractiveness times satisfaction); with --ubm, the user browsing model "
        "is, and the label is the click rate when looked at. "
        "Features come from FEATURES, joined by (qid, doc_id). Train on the result with a loss "
        "linear in the labels (e.g. `loss: softmax`; configs/clicks/).",
        epilog="example: ltr clicks labels clicks/S1.parquet --features data/mq2008/S1.txt.xz "
        "--propensity clicks/propensity.json --out clicks/S1-ips.parquet",
    )
    p.add_argument("log", type=Path, metavar="LOG.parquet")
    p.add_argument(
        "--features", nargs="+", required=True, type=Path, help="LETOR/Parquet feature file(s)"
    )
    p.add_argument("--out", required=True, type=Path, metavar="OUT.parquet")
    bias = p.add_mutually_exclusive_group(required=True)
    bias.add_argument("--propensity", type=Path, help="a file from `ltr clicks propensity`")
    bias.add_argument("--eta", type=float, help="propensities (1/k)^eta")
    p.add_argument(
        "--false-click",
        type=float,
        help="with --eta: the trust-bias model's alpha_k and beta_k (see `simulate`)",
    )
    bias.add_argument(
        "--naive", action="store_true", help="no correction: labels are click-through rates"
    )
    bias.add_argument(
        "--cascade",
        action="store_true",
        help="no propensities: fit the dependent click model (users read from the top and may "
        "stop after a click) to the log's sessions by EM; labels are each document's click "
        "rate when looked at",
    )
    bias.add_argument(
        "--dbn",
        action="store_true",
        help="no propensities: fit the dynamic Bayesian network (users read from the top, stop "
        "when a click satisfies them, and may give up) to the log's sessions by EM; labels are "
        "each document's attractiveness times its satisfaction",
    )
    bias.add_argument(
        "--ubm",
        action="store_true",
        help="no propensities: fit the user browsing model (attention by position and by the "
        "distance to the last click above) to the log by EM; labels are each document's click "
        "rate when looked at",
    )
    p.add_argument(
        "--perseverance",
        type=float,
        metavar="GAMMA",
        help="with --dbn: hold the probability of reading on when not satisfied at GAMMA "
        "(default: estimated from the log)",
    )
    p.add_argument(
        "--min-propensity",
        type=float,
        default=0.0,
        help="clip propensities from below (bounds the labels' variance; default 0 = unbiased)",
    )
    p.add_argument(
        "--prior-strength",
        type=_prior_strength,
        default=0.0,
        metavar="S",
        help="shrink each label towards a logistic regression of relevance on the features "
        "(fitted to the log by EM, PBM; with --cascade, --dbn or --ubm, to the model's expected "
        "counts), as if it were S more impressions: lowers the variance of documents shown a "
        "few times. `auto` tries 0 to 500 and keeps the one whose labels best predict held-out "
        "sessions' clicks (5-fold cross-validation over sessions, about 6 prior fits). "
        "Default 0 = unshrunk labels",
    )
    p.add_argument("--quiet", action="store_true", help="print nothing but errors")
    p.set_defaults(func=run_labels)


def _register_compare(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser(
        "compare",
        help="which click model explains a log: PBM, trust bias, DCM, DBN or UBM, on held-out "
        "sessions",
        description="Fit the position-based model, the PBM with trust bias, the dependent "
        "click model (a cascade), the dynamic Bayesian network (a cascade whose users give "
        "up) and the user browsing model to most of LOG's sessions, and score how well each "
        "predicts the clicks of the sessions held out: log-likelihood per impression (higher is "
        "better) and perplexity averaged over positions 1-10 (lower is better; 1 = always sure and "
        "right, 2 = a coin toss). The model that explains the log says which labels to make: "
        "`labels --propensity` from `propensity` (pbm), from `propensity --click-model trust` "
        "(trust), `labels --cascade` (cascade), `labels --dbn` (dbn), or `labels --ubm` (ubm).",
        epilog="example: ltr clicks compare clicks/S1.parquet",
    )
    p.add_argument("log", type=Path, metavar="LOG.parquet")
    p.add_argument(
        "--models",
        nargs="+",
        choices=SIMULATED,
        default=list(SIMULATED),
        help="the click models to fit (default: all five)",
    )
    p.add_argument(
        "--test-share",
        type=float,
        default=0.25,
        help="share of the sessions held out, drawn at random (default 0.25)",
    )
    p.add_argument("--seed", type=int, default=0, help="the draw of held-out sessions")
    p.add_argument("--quiet", action="store_true", help="print the table only")
    p.set_defaults(func=run_compare)


def run_compare(args: argparse.Namespace) -> int:
    from ltr.clicks.compare import compare_click_models
    from ltr.clicks.log import read_log

    started = time.perf_counter()
    log = read_log(args.log)
    result = compare_click_models(
        log,
        models=tuple(dict.fromkeys(args.models)),
        test_share=args.test_share,
        seed=args.seed,
        progress=not args.quiet,
    )
    print(
        f"{result.train_sessions:,} sessions to fit, {result.test_sessions:,} held out "
        f"({result.test_impressions:,} impressions):"
    )
    print(f"  {'model':<8} {'log-likelihood':>14} {'perplexity':>10}  fitted")
    for score in result.scores:
        print(
            f"  {score.model:<8} {score.log_likelihood:>14.5f} {score.perplexity:>10.4f}  "
            f"{score.summary}"
        )
    for model, why in result.not_fitted:
        print(f"  {model:<8} {'-':>14} {'-':>10}  not fitted: {why}")
    best = result.scores[0].model
    verdict = f"best explained by {result.recommended}"
    if result.recommended != best:
        verdict += f" ({best} fits no better by more than the noise, with more parameters)"
    simulated = (log.simulation or {}).get("model")
    if simulated:
        verdict += f"; the log was simulated with --click-model {simulated}"
    print(verdict)
    if not args.quiet:
        print(f"({time.perf_counter() - started:.1f} s)")
    return 0


def _prior_strength(text: str) -> float | str:
    if text == "auto":
        return text
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number >= 0 or auto, got {text!r}") from None
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a number >= 0 or auto, got {text!r}")
    return value


def run_simulate(args: argparse.Namespace) -> int:
    from ltr.clicks.simulate import logging_scores, simulate_clicks
    from ltr.data.dataset import load_dataset
    from ltr.errors import ConfigError

    started = time.perf_counter()
    if args.out.suffix not in ("", ".parquet"):  # e.g. .csv: the file would be Parquet anyway
        raise ConfigError(
            f"--out {args.out}: the click log is written as Parquet; give a .parquet path "
            "(`ltr clicks join` reads a front end's CSV clicks)"
        )
    _check_click_model_args(args)
    if args.server is not None:
        return _simulate_served(args, started)
    served_only = [f for f in ("clicks_out", "ca", "cert", "key") if getattr(args, f) is not None]
    served_only += ["record_clicks"] if args.record_clicks else []
    if served_only:
        flag = "--" + served_only[0].replace("_", "-")
        raise ConfigError(f"{flag} is an option of --server (users of a running server)")
    data = load_dataset(args.data)
    scores = logging_scores(
        data,
        feature=args.ranker_feature,
        scores=None if args.ranker_scores is None else _read_scores(args.ranker_scores),
    )
    ranker = (
        {"ranker_feature": args.ranker_feature}
        if args.ranker_feature
        else {"ranker_scores": str(args.ranker_scores)}
    )
    rows = simulate_clicks(
        data,
        scores,
        args.out,
        model=_click_model(args, data),
        sessions=args.sessions,
        temperature=1.0 if args.temperature is None else args.temperature,
        top_k=args.top_k,
        seed=args.seed,
        metadata={**ranker, "data": [str(p) for p in args.data]},
        progress=not args.quiet,
    )
    if not args.quiet:
        print(
            f"wrote {args.out}: {rows:,} impressions, {len(data) * args.sessions:,} sessions of "
            f"{len(data):,} queries in {time.perf_counter() - started:.1f} s"
        )
    return 0


def _check_click_model_args(args: argparse.Namespace) -> None:
    from ltr.errors import ConfigError

    if args.click_model != "cascade" and args.continue_after_click is not None:
        raise ConfigError("--continue-after-click is a parameter of --click-model cascade")
    if args.click_model != "dbn" and args.perseverance is not None:
        raise ConfigError("--perseverance is a parameter of --click-model dbn")
    if args.click_model in CASCADES and args.eta is not None:
        raise ConfigError(
            "--eta is a parameter of the pbm, trust and ubm models; in a cascade, what is looked "
            "at follows from the clicks above (--continue-after-click, --perseverance)"
        )
    if args.click_model != "trust" and args.false_click is not None:
        raise ConfigError("--false-click is a parameter of --click-model trust")
    if args.click_model == "trust" and args.noise is not None:
        raise ConfigError("--noise is a parameter of --click-model pbm; trust has --false-click")


def _click_model(args: argparse.Namespace, data):
    """The simulated users' click model from the command line (grades up to ``--max-grade``,
    else the data's highest)."""
    from ltr.clicks.model import (
        BrowsingModel,
        CascadeModel,
        DynamicBayesianModel,
        PositionBasedModel,
        TrustBiasModel,
    )

    max_grade = args.max_grade if args.max_grade is not None else float(data.labels.max())
    max_grade = max_grade if max_grade > 0 else 1.0
    eta = 1.0 if args.eta is None else args.eta
    noise = 0.1 if args.noise is None else args.noise
    if args.click_model == "pbm":
        return PositionBasedModel(eta=eta, noise=noise, max_grade=max_grade)
    if args.click_model == "cascade":
        lam = 0.5 if args.continue_after_click is None else args.continue_after_click
        return CascadeModel(continue_after_click=lam, noise=noise, max_grade=max_grade)
    if args.click_model == "dbn":
        gamma = 0.9 if args.perseverance is None else args.perseverance
        return DynamicBayesianModel(perseverance=gamma, noise=noise, max_grade=max_grade)
    if args.click_model == "ubm":
        return BrowsingModel(eta=eta, noise=noise, max_grade=max_grade)
    false_click = 0.65 if args.false_click is None else args.false_click
    return TrustBiasModel(eta=eta, false_click=false_click, max_grade=max_grade)


def _simulate_served(args: argparse.Namespace, started: float) -> int:
    """``simulate --server``: users of a running server."""
    from ltr.clicks.served import simulate_served_clicks
    from ltr.errors import ConfigError
    from ltr.serve.client import RerankerClient, load_served_data

    if args.temperature is not None:
        raise ConfigError(
            "--temperature is not an option with --server: the server ranks, and every user "
            "sees the list it returns"
        )
    with RerankerClient(
        args.server, ca=args.ca, cert=args.cert, key=args.key, timeout=args.timeout
    ) as client:
        data = load_served_data(client.model_info().spec, args.data)
        result = simulate_served_clicks(
            client,
            data,
            args.out,
            model=_click_model(args, data),
            sessions=args.sessions,
            top_k=args.top_k,
            seed=args.seed,
            clicks_out=args.clicks_out,
            record_clicks=args.record_clicks,
            concurrency=args.concurrency,
            metadata={"server": args.server, "data": [str(p) for p in args.data]},
            progress=not args.quiet,
        )
    if not args.quiet:
        versions = ", ".join(result.versions)
        print(
            f"wrote {args.out}: {result.impressions:,} impressions, {result.sessions:,} sessions "
            f"of {len(data):,} queries, {result.clicks:,} clicks, served by model version "
            f"{versions} in {time.perf_counter() - started:.1f} s"
        )
        if args.clicks_out is not None:
            print(f"wrote {args.clicks_out}: the clicks of the logged sessions")
        if args.record_clicks:
            print("sent the clicks of the logged sessions back to the server (RecordClicks)")
        if result.unlogged_sessions:
            print(
                f"{result.unlogged_sessions:,} sessions came back without an impression id "
                "(the server logs none, or its sample left them out): their clicks are not in "
                "the clicks file"
            )
    return 0


def _read_scores(path: Path):
    """A Parquet file, or the directory of a finished `ltr score` job, as one table."""
    import pyarrow.parquet as pq

    from pipelines.jobdir import SUCCESS, read_scored

    if not path.exists():
        raise FileNotFoundError(f"no such scores file: {path}")
    return read_scored(path) if (path / SUCCESS).exists() else pq.read_table(path)


def run_propensity(args: argparse.Namespace) -> int:
    from ltr.clicks.labels import pair_features
    from ltr.clicks.log import aggregate, read_log
    from ltr.clicks.propensity import Propensity, estimate_em, format_propensity
    from ltr.data.dataset import load_dataset
    from ltr.errors import ConfigError

    started = time.perf_counter()
    if args.features is not None and args.click_model != "pbm":
        raise ConfigError("--features (regression EM) estimates --click-model pbm only")
    log = read_log(args.log)
    features = None if args.features is None else pair_features(log, load_dataset(args.features))
    prop = estimate_em(
        aggregate(log),
        click_model=args.click_model,
        features=features,
        pool_after=args.pool_after,
        max_iter=args.max_iter,
        tol=args.tol,
        progress=not args.quiet,
    )
    prop = Propensity(**{**prop.__dict__, "log": str(args.log)})
    prop.save(args.out)
    if not args.quiet:
        truth = None
        simulated = (log.simulation or {}).get("model")
        if simulated == args.click_model == "pbm":
            truth = Propensity.formula(log.simulation["eta"])
        elif simulated == args.click_model == "trust":
            truth = Propensity.formula(
                log.simulation["eta"], false_click=log.simulation["false_click"]
            )
        elif simulated in SESSION_MODELS:
            print(
                f"(the log was simulated with --click-model {simulated}, where what is looked at "
                "follows from each session's clicks, not from the position alone; "
                f"`ltr clicks labels --{simulated}` fits that model)"
            )
        elif simulated in CLICK_MODELS:
            print(f"(the log was simulated with --click-model {simulated})")
        state = "converged" if prop.converged else "did NOT converge (raise --max-iter)"
        how = "regression EM" if prop.relevance_model else "EM"
        print(format_propensity(prop, truth=truth))
        print(
            f"wrote {args.out}: {len(prop.theta)} positions from {len(log):,} impressions; {how} "
            f"{state} in {prop.iterations} steps, {time.perf_counter() - started:.1f} s"
        )
    if args.click_model == "pbm" and features is None and not args.quiet:
        warning = few_sessions_warning(log.sessions_per_query())
        if warning:
            print(warning, file=sys.stderr)
    return 0


FEW_SESSIONS = 10


def few_sessions_warning(sessions_per_query) -> str | None:
    """A warning when the median query had fewer than ``FEW_SESSIONS`` sessions, below which
    per-document EM was measured off by 0.09 or more (docs/CLICKS.md); else None."""
    import numpy as np

    median = float(np.median(sessions_per_query))
    if median >= FEW_SESSIONS:
        return None
    return (
        f"warning: the median query has {median:g} sessions; with fewer than {FEW_SESSIONS}, "
        "EM with a relevance per document fits the noise of each document's few impressions "
        "(on MQ2008 its largest error was 0.09 at 10 sessions and 0.5 at 3). Give the "
        "documents' features (--features) for regression EM, which shares relevance through "
        "them (docs/CLICKS.md)."
    )


def run_labels(args: argparse.Namespace) -> int:
    from ltr.clicks.labels import (
        choose_prior_strength,
        click_labels,
        match_rows,
        pair_features,
        write_labelled,
    )
    from ltr.clicks.log import aggregate, read_log
    from ltr.clicks.propensity import Propensity, relevance_prior
    from ltr.data.dataset import load_dataset
    from ltr.errors import ConfigError

    started = time.perf_counter()
    if args.propensity is not None:
        prop: Propensity | None = Propensity.load(args.propensity)
    elif args.eta is not None:
        prop = Propensity.formula(args.eta, false_click=args.false_click)
    else:
        prop = None
    if args.false_click is not None and args.eta is None:
        raise ConfigError("--false-click goes with --eta (a propensity file carries its own)")
    session_model = next((m for m in SESSION_MODELS if getattr(args, m)), None)
    if args.prior_strength and prop is None and session_model is None:
        raise ConfigError(
            "--prior-strength needs propensities (--propensity or --eta) or a session model "
            "(--cascade, --dbn, --ubm); click-through rates are not shrunk"
        )
    if session_model and args.min_propensity:
        raise ConfigError(f"--min-propensity clips propensities; --{session_model} uses none")
    if args.perseverance is not None and not args.dbn:
        raise ConfigError("--perseverance is a parameter of --dbn")
    for path in args.features:
        if path.is_dir():
            raise ConfigError(
                f"--features {path} is a folder; give the LETOR or Parquet feature files in "
                "it, each by name"
            )
        if not path.exists():
            raise ConfigError(f"--features {path}: no such file")
    log = read_log(args.log)
    features = load_dataset(args.features)
    rows = match_rows(log, features)  # the join, once for the prior and the output
    prior, strength, fit = None, args.prior_strength, None
    if session_model:
        fit, strength = _session_fit(args, session_model, log, features, rows)
    elif strength:
        assert prop is not None
        pairs = pair_features(log, features, rows)
        if strength == "auto":
            choice = choose_prior_strength(
                log, prop, pairs, min_propensity=args.min_propensity, progress=not args.quiet
            )
            strength = choice.strength
            if not args.quiet:
                print(format_prior_choice(choice))
        if strength:
            prior = relevance_prior(aggregate(log), prop, pairs, progress=not args.quiet)
    if fit is not None:
        if not fit.converged:
            print(
                f"warning: {session_model} EM did not converge in {fit.iterations} steps",
                file=sys.stderr,
            )
        labels = fit.labels
    else:
        labels = click_labels(
            log, prop, min_propensity=args.min_propensity, prior=prior, prior_strength=strength
        )
    stats = write_labelled(log, labels, features, args.out, rows)
    if not args.quiet:
        how = "click-through rates" if prop is None else "IPS click rates"
        if session_model == "cascade":
            how = (
                "click rates when looked at, under the dependent click model (users read on "
                f"after a click with probability {fit.continue_after_click:.3f}, EM in "
                f"{fit.iterations} steps)"
            )
        elif session_model == "dbn":
            held = "held" if args.perseverance is not None else "estimated"
            how = (
                "satisfying-click rates when looked at, under the dynamic Bayesian network "
                f"(users read on when not satisfied with probability {fit.perseverance:.3f}, "
                f"{held}; EM in {fit.iterations} steps)"
            )
        elif session_model == "ubm":
            g = fit.examination
            below = f", {g[1, 1]:.3f} right below a click at 1" if len(g) > 1 else ""
            how = (
                "click rates when looked at, under the user browsing model (position 2 looked "
                f"at with probability {g[min(1, len(g) - 1), 0]:.3f} below no click{below}; EM "
                f"in {fit.iterations} steps)"
            )
        if prop is not None and prop.click_model == "trust":
            how = "affine-corrected click rates"
        if prior is not None:
            how += f" shrunk towards a feature prior of {strength:g} impressions"
        elif fit is not None and strength:
            how += f" shrunk towards feature priors of {strength:g} observations"
        print(
            f"wrote {args.out} in {time.perf_counter() - started:.1f} s: {stats.documents:,} "
            f"documents of {stats.queries:,} queries labelled with {how} "
            f"({stats.clicked_documents:,} clicked; {stats.unlogged_documents:,} never shown, "
            "left out)"
        )
    return 0


def _session_fit(args: argparse.Namespace, model: str, log, features, rows):
    """``labels --cascade`` / ``--dbn`` / ``--ubm``: the model's fit (shrunk towards feature
    priors with ``--prior-strength``), and the strength used."""
    from ltr.clicks.labels import pair_features
    from ltr.clicks.session_prior import (
        choose_session_prior_strength,
        fit_session_model,
        fit_with_prior,
    )

    strength = args.prior_strength
    if strength:
        pairs = pair_features(log, features, rows)
        if strength == "auto":
            choice = choose_session_prior_strength(
                log, model, pairs, perseverance=args.perseverance, progress=not args.quiet
            )
            strength = choice.strength
            if not args.quiet:
                print(format_prior_choice(choice))
        if strength:
            fit = fit_with_prior(
                log,
                model,
                pairs,
                strength,
                perseverance=args.perseverance,
                progress=not args.quiet,
            )
            return fit, strength
    fit = fit_session_model(log, model, perseverance=args.perseverance, progress=not args.quiet)
    return fit, 0.0


def format_prior_choice(choice) -> str:
    """The held-out error of every prior strength that `--prior-strength auto` tried."""
    best = min(choice.errors)
    lines = [
        f"prior strength by {choice.folds}-fold cross-validation over sessions "
        f"({choice.impressions:,} held-out impressions; squared error of predicted clicks):"
    ]
    for strength, error in zip(choice.strengths, choice.errors, strict=True):
        mark = "  <- chosen" if strength == choice.strength else ""
        lines.append(f"  S = {strength:>5g}   {error:.5f}   (+{error - best:.5f}){mark}")
    if choice.strength == 0:
        lines.append("no prior beats the unshrunk labels on this log: labels are not shrunk")
    return "\n".join(lines)
