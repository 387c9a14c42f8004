"""The ``jobstream`` command: one module per command group; each command parses its
arguments, calls one operation (``ops``, ``views`` or ``host``) and renders the result.

May import: everything but ``client``.
"""
