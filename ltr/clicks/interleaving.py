"""Which of two served models users prefer: the verdict of team-draft interleaving.

``ltr serve --challenger MODEL --impressions DIR`` answers lists with the team-draft interleaving
of its model's ranking and the challenger's (:mod:`ltr.serve.interleaving`), and logs each shown
candidate's ``team``. :func:`interleaving_verdict` reads that log and the clicks users made:

* each interleaved session's clicks (at positions up to ``max_position``) are credited to the
  teams whose candidates were clicked; the team with more clicked candidates wins the session,
  equal credit is a tie, and a session without clicks says nothing;
* the challenger's **preference** is ``(wins + ties / 2) / sessions with clicks - 0.5``, from
  -0.5 (users always preferred the model) to +0.5 (always the challenger), as in Chapelle et
  al. (2012), *Large-scale validation and analysis of interleaved search evaluation*;
* the **p-value** is a two-sided sign test of the challenger's wins against the model's (ties
  left out): the chance of a split at least this uneven if users had no preference. It holds
  for a number of sessions fixed in advance: read again and again as sessions come in, and
  stopped at the first small value, it finds a preference that is not there far more often
  than ``alpha`` says;
* the **anytime p-value** (:meth:`Verdict.anytime_p_value`) may be read as often as one likes
  and the test stopped whenever it falls below ``alpha``: a mixture sequential probability
  ratio test (Robbins 1970; Johari et al. 2017, *Peeking at A/B tests*) of the same wins. Under
  no preference, the Bayes factor ``B(W + a, L + a) / B(a, a) * 2^(W + L)`` of ``W`` challenger
  and ``L`` model wins, for win probabilities drawn from ``Beta(a, a)``, is a martingale of
  mean 1, so by Ville's inequality the chance that it *ever* reaches ``1 / alpha`` is at most
  ``alpha``; its inverse is the p-value. ``a`` is set from the ``effect`` the test is tuned to:
  the prior's standard deviation of the win probability around 1/2.

Sessions are grouped by the pair of model versions that served them, so that a log that spans a
model update gives one verdict per pair.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ltr.clicks.join import click_keys, impression_files, read_clicks
from ltr.errors import ConfigError, DataFormatError

COLUMNS = [
    "session", "doc_id", "position", "team", "model_name", "model_version", "challenger_name",
    "challenger_version",
]  # fmt: skip


DEFAULT_EFFECT = 0.05
"""The win probability's distance from 1/2 the anytime p-value is tuned to by default: a
preference of 0.05, about what separates rankers a point or two of NDCG apart."""


def prior_strength(effect: float) -> float:
    """``a`` of the ``Beta(a, a)`` prior whose standard deviation is ``effect`` (0 < effect <
    1/2): ``sd^2 = 1 / (4 (2a + 1))``."""
    if not 0 < effect < 0.5:
        raise ConfigError(f"the effect must be between 0 and 0.5, got {effect}")
    return (1 / (4 * effect**2) - 1) / 2


@dataclass(frozen=True)
class Verdict:
    """What users said about one (model, challenger) pair."""

    model: str
    """The model's ``name version``."""
    challenger: str
    """The challenger's ``name version``."""
    sessions: int
    """Interleaved sessions in the log."""
    clicked: int
    """Of those, sessions with at least one click (at the positions kept)."""
    model_wins: int
    challenger_wins: int
    ties: int

    @property
    def preference(self) -> float:
        """The challenger's preference, -0.5 to 0.5 (0 = no preference; nan without clicks)."""
        if self.clicked == 0:
            return float("nan")
        return (self.challenger_wins + self.ties / 2) / self.clicked - 0.5

    @cached_property
    def p_value(self) -> float:
        """Two-sided sign test of the wins (ties left out); 1.0 when no session was won."""
        from scipy.stats import binomtest

        decided = self.model_wins + self.challenger_wins
        if decided == 0:
            return 1.0
        return float(binomtest(self.challenger_wins, decided, 0.5).pvalue)

    def anytime_p_value(self, effect: float = DEFAULT_EFFECT) -> float:
        """The always-valid p-value of the wins (ties left out), from the mixture sequential
        probability ratio test tuned to ``effect`` (see the module's docstring): valid however
        often it is read as sessions come in. 1.0 when no session was won."""
        from scipy.special import betaln

        a = prior_strength(effect)
        won, lost = self.challenger_wins, self.model_wins
        log_factor = betaln(won + a, lost + a) - betaln(a, a) + (won + lost) * np.log(2.0)
        return float(min(1.0, np.exp(-log_factor)))

    def preferred(self, alpha: float, effect: float | None = None) -> str | None:
        """``"challenger"`` or ``"model"``, whichever users preferred at significance level
        ``alpha`` (by the sign test, or with ``effect`` by the anytime p-value); None when they
        showed no preference at that level."""
        p = self.p_value if effect is None else self.anytime_p_value(effect)
        if p >= alpha:
            return None
        return "challenger" if self.preference > 0 else "model"

    def to_dict(self, effect: float | None = None) -> dict:
        """The verdict's counts and measures; with ``effect``, its anytime p-value too."""
        more = (
            {}
            if effect is None
            else {"anytime_p_value": self.anytime_p_value(effect), "effect": effect}
        )
        return {
            "model": self.model,
            "challenger": self.challenger,
            "sessions": self.sessions,
            "clicked_sessions": self.clicked,
            "model_wins": self.model_wins,
            "challenger_wins": self.challenger_wins,
            "ties": self.ties,
            "preference": self.preference,
            "p_value": self.p_value,
        } | more


def _read(files: list[Path]) -> pa.Table:
    tables = []
    for path in files:
        names = pq.read_schema(path).names
        missing = [c for c in COLUMNS if c not in names]
        if "session" in missing or "doc_id" in missing:
            raise DataFormatError(
                f"{path}: not an impression log (no 'session' or 'doc_id' column); "
                "`ltr serve --impressions DIR` writes them"
            )
        if missing:  # a log written before interleaving existed: nothing interleaved in it
            continue
        tables.append(pq.read_table(path, columns=COLUMNS))
    if not tables:
        raise DataFormatError(
            "the impression log has no team column: it was written by a server without "
            "interleaving (start one with --challenger MODEL)"
        )
    return pa.concat_tables(tables)


@dataclass(frozen=True)
class SessionCredit:
    """Clicks credited to each team, per interleaved session."""

    sessions: np.ndarray
    """``[S]`` impression ids."""
    pairs: np.ndarray
    """``[S]`` ``(model name, model version, challenger name, challenger version)`` tuples."""
    credit: np.ndarray
    """``[S, 2]`` int64 clicked candidates placed by the model (column 0) and the challenger."""


def session_credit(
    impressions: list[Path], clicks: Path, *, max_position: int | None = None
) -> SessionCredit:
    """The interleaved sessions of the impression files or folders ``impressions`` with the
    clicks of ``clicks`` (Parquet, CSV or TSV with ``session`` and ``doc_id``, as for ``ltr
    clicks join``) credited to the team that placed each clicked candidate, counting only
    positions up to ``max_position``.

    Raises:
        DataFormatError: no interleaved session in the log, or unreadable files.
    """
    if max_position is not None and max_position < 1:
        raise DataFormatError(f"--max-position must be at least 1, got {max_position}")
    log = _read(impression_files(impressions))
    log = log.filter(pc.is_valid(log.column("team")))
    if log.num_rows == 0:
        raise DataFormatError(
            "the impression log holds no interleaved lists (its server had no --challenger, "
            "or interleaving.share left them all out)"
        )
    clicked_keys = pc.unique(click_keys(read_clicks(clicks)).combine_chunks())
    click = pc.is_in(click_keys(log), value_set=clicked_keys).to_numpy(zero_copy_only=False)
    if max_position is not None:
        click &= log.column("position").to_numpy() <= max_position
    team = log.column("team").to_numpy()
    sessions, session = np.unique(
        log.column("session").to_numpy(zero_copy_only=False).astype(str), return_inverse=True
    )
    credit = np.zeros((len(sessions), 2), dtype=np.int64)
    np.add.at(credit, (session, team.astype(np.int64)), click.astype(np.int64))
    _, first = np.unique(session, return_index=True)  # a session's pair is on all its rows
    who = log.select(COLUMNS[4:]).take(first)
    pairs = np.empty(len(sessions), dtype=object)
    for i, pair in enumerate(zip(*(who.column(c).to_pylist() for c in COLUMNS[4:]), strict=True)):
        pairs[i] = pair
    return SessionCredit(sessions, pairs, credit)


def verdict_of(credit: np.ndarray, model: str = "", challenger: str = "") -> Verdict:
    """The :class:`Verdict` of sessions' ``[S, 2]`` credit (model, challenger)."""
    has_clicks = credit.sum(axis=1) > 0
    return Verdict(
        model=model,
        challenger=challenger,
        sessions=len(credit),
        clicked=int(has_clicks.sum()),
        model_wins=int((credit[:, 0] > credit[:, 1]).sum()),
        challenger_wins=int((credit[:, 1] > credit[:, 0]).sum()),
        ties=int((has_clicks & (credit[:, 0] == credit[:, 1])).sum()),
    )


def interleaving_verdict(
    impressions: list[Path], clicks: Path, *, max_position: int | None = None
) -> list[Verdict]:
    """One :class:`Verdict` per (model, challenger) pair of the interleaved sessions in the
    impression files or folders ``impressions``, from the click file ``clicks`` (see
    :func:`session_credit`)."""
    found = session_credit(impressions, clicks, max_position=max_position)
    codes: dict[tuple, int] = {}
    code = np.array([codes.setdefault(pair, len(codes)) for pair in found.pairs.tolist()])
    verdicts = []
    for pair in sorted(codes):
        model_name, model_version, rival_name, rival_version = pair
        verdicts.append(
            verdict_of(
                found.credit[code == codes[pair]],
                f"{model_name} {model_version}",
                f"{rival_name} {rival_version}",
            )
        )
    return verdicts
