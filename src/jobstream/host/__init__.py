"""Running jobstream: connecting the way the settings say (``connect``), the embedded
nats-server (``embedded``), the long-running processes (``services``), everything in
one process (``local``), restarting services that fail (``supervise``), and the event
loop and interpreter settings of a process (``loop``).

May import: everything but ``cli`` and ``client``.
"""
