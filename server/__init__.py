"""The composition root: the one place that knows every feature.

``server.features.FEATURES`` lists the feature manifests; ``server.app.create_app`` builds the
Sanic app from them (``sanic server.app:create_app --factory``); ``server.orm`` gives Tortoise
their model apps; ``python -m server`` is the command line. Nothing imports ``server`` but entry
points (the Sanic CLI, the Makefile, tests and benchmarks).
"""
