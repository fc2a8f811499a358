"""``ltr registry``: the registered models' versions and aliases in the MLflow registry.

A server of ``models:/NAME@ALIAS`` polls the alias, so moving it is how a new version goes live:

    ltr registry list ltr-mq2008-setrank
    ltr registry promote ltr-mq2008-setrank --from candidate --to champion
    ltr registry alias ltr-mq2008-setrank champion 3        # or name the version
"""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "registry",
        help="list a registered model's versions and aliases; move an alias (promote)",
        description="The MLflow model registry ($MLFLOW_TRACKING_URI, else the embedded store "
        "in the current folder, as for `ltr train`). A server of models:/NAME@ALIAS polls the "
        "alias and swaps to the version it names, so `promote` or `alias` puts a version live.",
    )
    commands = p.add_subparsers(dest="registry_command", metavar="STEP")
    commands.required = True

    listing = commands.add_parser("list", help="a registered model's versions, newest first")
    listing.add_argument("name", metavar="NAME")
    listing.add_argument("--json", action="store_true", help="print the versions as JSON")
    listing.set_defaults(func=run_list)

    alias = commands.add_parser("alias", help="point models:/NAME@ALIAS at a version")
    alias.add_argument("name", metavar="NAME")
    alias.add_argument("alias", metavar="ALIAS")
    alias.add_argument("version", metavar="VERSION")
    alias.set_defaults(func=run_alias)

    promote = commands.add_parser(
        "promote",
        help="point one alias at the version another names (candidate -> champion)",
        epilog="example: ltr clicks interleaving impressions/ --clicks clicks.csv --exit-code "
        "&& ltr registry promote ltr-mq2008-setrank --from candidate --to champion",
    )
    promote.add_argument("name", metavar="NAME")
    promote.add_argument("--from", dest="source", default="candidate", metavar="ALIAS",
                         help="the alias whose version goes live (default candidate)")  # fmt: skip
    promote.add_argument("--to", dest="target", default="champion", metavar="ALIAS",
                         help="the alias the servers poll (default champion)")  # fmt: skip
    promote.set_defaults(func=run_promote)
    for parser in (listing, alias, promote):
        parser.add_argument(
            "--tracking-uri",
            help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else ./mlflow.db)",
        )


def run_list(args: argparse.Namespace) -> int:
    import json
    from datetime import UTC, datetime

    from ltr.tracking import list_versions

    versions = list_versions(args.name, args.tracking_uri)
    if args.json:
        print(json.dumps([v.__dict__ | {"aliases": list(v.aliases)} for v in versions], indent=1))
        return 0
    print(f"{'version':>7}  {'aliases':<24} {'created (UTC)':<17} run")
    for v in versions:
        when = datetime.fromtimestamp(v.created, UTC).strftime("%Y-%m-%d %H:%M")
        print(f"{v.version:>7}  {', '.join(v.aliases) or '-':<24} {when:<17} {v.run_id}")
    return 0


def run_alias(args: argparse.Namespace) -> int:
    from ltr.tracking import set_alias

    before = set_alias(args.name, args.alias, args.version, args.tracking_uri)
    _say(args.name, args.alias, before, str(args.version))
    return 0


def run_promote(args: argparse.Namespace) -> int:
    from ltr.errors import ConfigError
    from ltr.tracking import promote

    if args.source == args.target:
        raise ConfigError(f"--from and --to are both {args.source!r}; name two aliases")
    before, now = promote(args.name, args.source, args.target, args.tracking_uri)
    _say(args.name, args.target, before, now, f" (the version @{args.source} names)")
    return 0


def _say(name: str, alias: str, before: str | None, now: str, why: str = "") -> None:
    was = "was unset" if before is None else f"was version {before}"
    if before == now:
        print(f"models:/{name}@{alias} already names version {now}{why}")
    else:
        print(f"models:/{name}@{alias} -> version {now}{why}; {was}")
