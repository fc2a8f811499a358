"""Learning to rank from clicks: click logs, position-bias propensities and unbiased labels.

Logged clicks say as much about where a document was shown as about whether it was relevant:
users look at the top of a list more than at its bottom. This package turns a click log into
training data whose labels are unbiased estimates of relevance, by inverse propensity scoring
(IPS) under the position-based click model (PBM)::

    P(click | document d at position k) = theta_k * gamma_d

or by the affine correction under trust bias, where users click irrelevant documents at the top
more often: ``P(click) = alpha_k * gamma_d + beta_k``, or, where users read from the top and may
stop after a click (a cascade), by fitting the dependent click model to the sessions, or the
dynamic Bayesian network where users also give up and stop once satisfied, or the user browsing
model where what users look at depends on the distance to their last click.

- :mod:`ltr.clicks.log`: the click log (one row per impression) and its checks.
- :mod:`ltr.clicks.model`: the PBM with ``theta_k = (1/k)^eta`` and the graded-relevance click
  probabilities of Chuklin et al. / Ai et al., the trust-bias model of Vardasbi et al., and the
  dependent click model of Guo et al., the dynamic Bayesian network of Chapelle and Zhang, and
  the user browsing model of Dupret and Piwowarski; used to simulate logs from judged data.
- :mod:`ltr.clicks.simulate`: clicks of simulated users on the rankings of a logging ranker.
- :mod:`ltr.clicks.propensity`: ``theta_k`` (or ``alpha_k, beta_k``) from a formula, or
  estimated from the log by EM (regression EM: relevance through features); a relevance prior
  from features.
- :mod:`ltr.clicks.labels`: per-document IPS (or affine-corrected) relevance labels, optionally
  shrunk towards the prior with a strength chosen on held-out sessions, joined to features,
  written as ltr Parquet for ``ltr train``.
- :mod:`ltr.clicks.cascade`: relevance labels under the dependent click model, by EM over
  sessions.
- :mod:`ltr.clicks.dbn`: attractiveness, satisfaction and perseverance under the dynamic
  Bayesian network, by EM over sessions; labels are attractiveness times satisfaction.
- :mod:`ltr.clicks.ubm`: attractiveness and examination by position and distance to the last
  click under the user browsing model, by EM; labels are the attractiveness.
- :mod:`ltr.clicks.squarem`: SQUAREM-accelerated EM, for the DBN and the UBM.
- :mod:`ltr.clicks.session_prior`: feature priors for the DCM's, the DBN's and the UBM's
  estimates, and their strength chosen on held-out sessions.
- :mod:`ltr.clicks.compare`: which click model best predicts held-out sessions' clicks.

The command line is ``ltr clicks simulate | propensity | labels | compare``; see
``docs/CLICKS.md``.
"""
