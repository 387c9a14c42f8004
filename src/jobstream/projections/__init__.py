"""The projector: folds the log into DuckDB read models (one module per table in
``tables``, run by ``duck``) and the JOBS key-value bucket (``kv``, its records in
``records``), and answers SQL over NATS (``query``).

May import: the core, ``streams`` and ``archive``.
"""
