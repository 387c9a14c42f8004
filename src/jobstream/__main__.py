"""``python -m jobstream`` is the same as the ``jobstream`` command."""

from jobstream.cli.app import main

main()
