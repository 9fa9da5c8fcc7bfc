"""Speed measurements against the real server: ``make bench`` (see ``docs/benchmarks.md``).

``runner`` runs one bench: ``data`` builds the data set, ``server`` starts
``sanic bench.app:create_bench_app`` (``app``: the shipped app plus the ``/bench`` ceiling routes),
``scenarios`` says what to send, ``wrk`` (with ``wrk.lua``) and ``pyload`` are the load generators
(processes of their own), ``ceilings`` the references, ``checks`` the exactness checks,
``figures`` and ``report`` the results. ``config`` holds the run's settings.
"""
