"""Feature manifests: what a feature package brings to the app, declared in one place.

Each feature package has a ``feature.py`` with one ``FEATURE = Feature(...)``: its blueprints, its
scheduled jobs, its Tortoise model apps (label → model modules and migrations package) and its
start-up and shutdown hooks. The composition root (``server/``) lists the features once; the app
factory, the ORM configuration, the scheduler and the command line read that list. Adding a
feature is one line there.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field

from sanic import Blueprint

from backend.config import Settings
from backend.context import AppContext
from backend.scheduler import JobFunc

Hook = Callable[[AppContext], Awaitable[None]]


@dataclass(frozen=True)
class JobDecl:
    """A scheduled job: ``func(ctx)`` every ``seconds`` (a number, or read from the settings)."""

    name: str
    seconds: int | Callable[[Settings], int]
    func: JobFunc

    def interval(self, settings: Settings) -> int:
        return self.seconds(settings) if callable(self.seconds) else self.seconds


@dataclass(frozen=True)
class ModelApp:
    """One Tortoise app label: its model modules and its migrations package."""

    modules: tuple[str, ...]
    migrations: str


@dataclass(frozen=True)
class Feature:
    """One feature package, as the app factory sees it."""

    name: str
    blueprints: tuple[Blueprint, ...] = ()
    jobs: tuple[JobDecl, ...] = ()
    models: Mapping[str, ModelApp] = field(default_factory=dict)
    # Run after the database is open, before the first request (fill the feature's slots here).
    on_start: tuple[Hook, ...] = ()
    # Run after the server stops serving, before the shared clients close.
    on_stop: tuple[Hook, ...] = ()


def model_apps(features: Iterable[Feature]) -> dict[str, ModelApp]:
    """Every app label of these features; a label declared twice is a wiring bug."""
    apps: dict[str, ModelApp] = {}
    for feature in features:
        for label, app in feature.models.items():
            if label in apps:
                raise ValueError(f"model app {label!r} declared twice ({feature.name})")
            apps[label] = app
    return apps
