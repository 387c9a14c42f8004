"""jobstream: an event-sourced workflow engine for command-line job campaigns on NATS JetStream.

The package is layered; imports point down, toward the pure core:

- the core (``model``, ``events``, ``decide``, ``codec``, ``ids``, ``errors``) and
  ``config``: the schema, the rules, settings. No I/O, no jobstream imports but each other.
- ``spec``: spec files to an expanded ``WorkflowDef``.
- ``streams``: NATS and JetStream: subjects, the event store, the job repository, readers.
- ``scheduler``, ``workers``, ``projections``: the three services that fold the log.
- ``views`` (the read side) and ``ops`` (what users do) over them.
- ``host``: running it all: processes, the embedded nats-server, a local run.
- ``cli`` and ``client``: two thin faces with the same operations.

``tests/unit/test_layout.py`` holds the rules. docs/architecture.md has the map.
"""

__version__ = "0.1.0"

from jobstream.client import Client, SubmitterClient

__all__ = ["Client", "SubmitterClient", "__version__"]
