"""Workers: bind to the hardware classes that fit, claim dispatches, run the processes
and record how each attempt ended. ``service`` is the worker, ``attempt`` one attempt,
``context`` what they share; ``slots``, ``capacity``, ``process``, ``prefetch`` and
``outputs`` are the machinery of running processes fast.

May import: the core and ``streams``.
"""
