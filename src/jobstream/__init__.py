"""jobstream: an event-sourced workflow engine for command-line job campaigns on NATS JetStream."""

__version__ = "0.1.0"

from jobstream.client import Client

__all__ = ["Client", "__version__"]
