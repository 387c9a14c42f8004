"""NATS and JetStream as jobstream uses them: the names of streams and subjects
(``subjects``), their creation (``setup``), the connection (``connection``), the event
store with optimistic concurrency (``store``), the one way job events are written
(``repository``), pipelined publishes (``pipeline``), readers of the log (``reader``,
``bulk``), the protocol bytes jobstream frames and parses itself (``wire``) and the one
adapter to nats-py's internals (``nats_adapter``).

May import: the core only.
"""
