"""Similar pain points, suggested before someone submits a new one.

One interface, :class:`SimilarityBackend`, so a backend can be swapped in per profile.

Only the campaign's listed pain points are suggested (:mod:`crowdsource.visibility`: under
pre-moderation, those a curator has marked valid).

* :class:`DatabaseSimilarity` (every profile today): loads the title and description of the
  campaign's listed pain points (newest ``MAX_CANDIDATES``) and ranks them by the Jaccard index of
  their character bigrams against the text. Character bigrams suit Chinese, which has no spaces
  between words, and need no segmenter.
* :class:`crowdsource.similar_index.ElasticsearchSimilarity` (services profile):
  ``more_like_this`` over a pain-point index kept in step by a scheduled sync; it falls back to the
  database method when Elasticsearch fails.

The backend is chosen once, at start-up, by ``crowdsource/feature.py`` (Elasticsearch when the app
has it, else the database) and kept in the app context's :data:`SIMILARITY` slot;
:func:`backend_for` reads it.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from typing import Protocol

from backend.context import AppContext, Slot
from crowdsource.models import Campaign, PainPoint, Status
from crowdsource.visibility import listed_q

MAX_CANDIDATES = 5000
MIN_SCORE = 0.05


@dataclass(frozen=True)
class Match:
    public_id: str
    title: str
    category: str
    status: Status
    score: float


class SimilarityBackend(Protocol):
    name: str

    async def similar(self, *, campaign: Campaign, text: str, limit: int) -> list[Match]:
        """The pain points of ``campaign`` most similar to ``text``, best first."""
        ...


def normalise(text: str) -> str:
    """Lower-case NFKC letters and digits only (punctuation and spaces dropped)."""
    folded = unicodedata.normalize("NFKC", text).lower()
    return "".join(ch for ch in folded if ch.isalnum())


def bigrams(text: str) -> set[str]:
    """The character bigrams of the normalised text (a lone character counts as one)."""
    chars = normalise(text)
    if len(chars) < 2:
        return {chars} if chars else set()
    return {chars[i : i + 2] for i in range(len(chars) - 1)}


def jaccard(a: set[str], b: set[str]) -> float:
    if not a or not b:
        return 0.0
    return len(a & b) / len(a | b)


class DatabaseSimilarity:
    """Character-bigram Jaccard over title and description, computed in the app."""

    name = "database-bigram-jaccard"

    async def similar(self, *, campaign: Campaign, text: str, limit: int) -> list[Match]:
        wanted = bigrams(text)
        rows = (
            await PainPoint.filter(listed_q(campaign), campaign_id=campaign.id)
            .order_by("-created_at", "-public_id")
            .limit(MAX_CANDIDATES)
            .values_list("public_id", "title", "description", "category", "status")
        )
        matches = []
        for public_id, title, description, category, status in rows:
            score = jaccard(wanted, bigrams(f"{title} {description}"))
            if score >= MIN_SCORE:
                matches.append(Match(public_id, title, category, Status(status), round(score, 4)))
        matches.sort(key=lambda m: m.score, reverse=True)  # stable: newer first on ties
        return matches[:limit]


SIMILARITY: Slot[SimilarityBackend] = Slot("crowdsource.similarity")


def backend_for(ctx: AppContext) -> SimilarityBackend:
    """The similarity backend chosen at start-up."""
    return ctx.get(SIMILARITY)
