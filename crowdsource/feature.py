"""Crowdsourcing: campaigns, pain points, votes, Open311, similar items, challenges, proposals."""

from __future__ import annotations

from backend.context import AppContext
from backend.features import Feature, JobDecl, ModelApp
from crowdsource import scheduled
from crowdsource.challenges import scheduled as challenges_scheduled
from crowdsource.challenges.views import bp as vendors_bp
from crowdsource.challenges.views import challenges_bp
from crowdsource.open311 import bp as open311_bp
from crowdsource.open311 import clients_bp as open311_clients_bp
from crowdsource.similar_index import ElasticsearchSimilarity
from crowdsource.similarity import SIMILARITY, DatabaseSimilarity
from crowdsource.views import bp as crowdsource_bp

SIMILAR_SYNC_EVERY = 10


async def _choose_similarity(ctx: AppContext) -> None:
    """Elasticsearch more-like-this when the app has Elasticsearch, else the database."""
    if ctx.elastic is not None:
        ctx.provide(SIMILARITY, ElasticsearchSimilarity(ctx.elastic, ctx.settings))
    else:
        ctx.provide(SIMILARITY, DatabaseSimilarity())


FEATURE = Feature(
    name="crowdsource",
    blueprints=(crowdsource_bp, vendors_bp, challenges_bp, open311_bp, open311_clients_bp),
    jobs=(
        JobDecl("crowdsource.phases", scheduled.PHASES_EVERY, scheduled.advance_phases),
        JobDecl("crowdsource.reconcile", scheduled.RECONCILE_EVERY, scheduled.reconcile_counters),
        JobDecl("crowdsource.integrity", scheduled.INTEGRITY_EVERY, scheduled.vote_integrity),
        JobDecl("search-pain-points-sync", SIMILAR_SYNC_EVERY, scheduled.sync_similar_index),
        JobDecl("challenges.close_submissions", 60, challenges_scheduled.close_submissions),
    ),
    models={
        "crowdsource": ModelApp(("crowdsource.models",), "crowdsource.migrations"),
        "challenges": ModelApp(
            ("crowdsource.challenges.models",), "crowdsource.challenges.migrations"
        ),
    },
    on_start=(_choose_similarity,),
)
