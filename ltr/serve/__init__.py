"""The gRPC reranking service (``ltr serve``), one concept per module.

* ``domain`` -- requests, ranked lists and model specs as plain objects (no gRPC);
* ``validation`` -- every bad request as an :class:`~ltr.errors.InputError` in one sentence;
* ``batching`` -- the bounded dynamic batcher; ``scoring`` -- padding, one forward pass, ranking;
* ``models`` -- loading, the model holder and its atomic swap on registry alias moves / SIGHUP;
* ``service`` -- the domain service the servicer calls; ``config`` -- settings;
* ``status`` -- the one place errors become gRPC status codes;
* ``convert`` + ``servicer`` -- the thin gRPC adapter; ``server`` -- process lifecycle;
* ``metrics``, ``tls``, ``client``, ``healthcheck``; ``_proto`` -- generated stubs
  (``protogen`` regenerates them, ``make proto``).
"""
