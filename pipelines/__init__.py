"""Batch pipelines around one ltr model artifact.

* :mod:`pipelines.scoring` -- streaming, resumable Parquet scoring (``ltr score``);
* :mod:`pipelines.spark` -- the same per-list scorer on PySpark (``ltr score --engine spark``);
* :mod:`pipelines.report` -- offline evaluation reports with bootstrap CIs, paired significance
  tests and plots (``ltr report``); statistics in :mod:`pipelines.stats`;
* :mod:`pipelines.cv` -- k-fold cross-validation as nested MLflow runs (``ltr cv``);
* :mod:`pipelines.synthetic` -- streamed synthetic ranking data for benchmarks and tests.

Every pipeline scores through :func:`ltr.predictor.load_predictor`, i.e. the same artifact and
loader as ``ltr evaluate`` and the gRPC server. Heavy modules are imported by the sub-modules only.
"""
