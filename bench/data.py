"""The bench's data set, built fresh for each run from the project's generators (``fixtures/``).

Embedded: a new SQLite file under ``var/bench/embedded``. Services: a new database
(``smartcircle_bench`` next to the configured one), the ``bench:`` key prefix and the ``bench-``
index prefix. Then: the demo city (venues) and catalogue (books, holdings), the Elasticsearch
index, distinct residents with signed tokens, a campaign in its voting phase whose per-address
and per-person vote limits are raised for the test, and one court for the booking race.
"""

from __future__ import annotations

import math
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import asyncpg

from backend.clock import SHANGHAI
from backend.config import Settings
from backend.context import build_context
from backend.db import close_database
from backend.models import Role, User
from backend.security import encode_access_token
from bench.config import BenchConfig, bench_database_url
from crowdsource.models import Audience, Campaign, PainPoint, Phase, Status
from fixtures.venues_load import checked_row, load_demo_books, load_demo_venues
from search.index import drain, reindex
from server.orm import migrate, open_database
from venues.bookings.models import BookableUnit
from venues.models import Holding, Venue, VenueKind

PAIN_POINTS = 300
HOT = 10
RACERS = 256


@dataclass
class Plan:
    """What the scenarios need to know about the data set."""

    venues: int
    titles: int
    holdings: int
    people: int
    campaign_id: str
    hot_items: list[str]
    tokens: list[str]  # "Bearer …", one per distinct resident
    unit_id: str
    booking_start: str

    def sizes(self) -> dict[str, int]:
        data = asdict(self)
        return {k: data[k] for k in ("venues", "titles", "holdings", "people")} | {
            "pain_points": PAIN_POINTS,
            "hot_pain_points": len(self.hot_items),
        }


@asynccontextmanager
async def store(config: BenchConfig) -> AsyncIterator[None]:
    """A fresh, migrated database, open in this process until the run ends."""
    settings = config.settings()
    await fresh_store(config)
    await migrate(settings)
    await open_database(settings)
    try:
        yield
    finally:
        await close_database()


async def fresh_store(config: BenchConfig) -> None:
    """An empty database for this run (never the test or development database)."""
    config.var_dir.mkdir(parents=True, exist_ok=True)
    if config.profile == "embedded":
        for path in config.var_dir.glob("smartcircle.sqlite3*"):
            path.unlink()
        shutil.rmtree(config.var_dir / "tmp", ignore_errors=True)
        return
    name = urlsplit(config.database_url).path.lstrip("/")
    if name in ("smartcircle", "smartcircle_test", "postgres", ""):
        raise SystemExit(f"refusing to empty the database {name!r}")
    admin = await asyncpg.connect(bench_database_url(config.database_url, "postgres"))
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()


async def build(config: BenchConfig) -> Plan:
    """Fill the open database (see :func:`store`), the index and the key-value store."""
    settings = config.settings()
    ctx = build_context(settings)
    try:
        await ctx.kv.clear_namespace()
        now = datetime.now(UTC)
        await load_demo_venues(now=now, count=config.venues)
        spaces = await Venue.filter(kind=VenueKind.READING_SPACE).count()
        per_venue = min(config.titles, math.ceil(config.holdings / max(spaces, 1)))
        await load_demo_books(now=now, count=config.titles, per_venue=per_venue)
        if ctx.elastic is not None:
            await reindex(ctx)
        await drain(ctx)
        people = await _people(config.people, settings)
        campaign_id, hot = await _campaign(now)
        unit_id, start = await _court()
        return Plan(
            venues=await Venue.all().count(),
            titles=config.titles,
            holdings=await Holding.all().count(),
            people=len(people),
            campaign_id=campaign_id,
            hot_items=hot,
            tokens=people,
            unit_id=unit_id,
            booking_start=start,
        )
    finally:
        await ctx.close()


async def _people(count: int, settings: Settings) -> list[str]:
    users = [
        User(role=Role.RESIDENT, wechat_openid=f"bench-person-{i}", display_name=f"居民{i}")
        for i in range(count)
    ]
    await User.bulk_create(users, batch_size=1000)
    return [
        "Bearer "
        + encode_access_token(
            secret=settings.token_key,
            user_id=user.public_id,
            role=Role.RESIDENT.value,
            session=f"bench-{i}",
            street=None,
            ttl=6 * 3600,
        )[0]
        for i, user in enumerate(users)
    ]


async def _campaign(now: datetime) -> tuple[str, list[str]]:
    """A campaign in its voting phase; the vote limits per address and person are raised."""
    campaign = await Campaign.create(
        title="性能测试活动",
        categories=[{"code": "parking", "label": "停车"}, {"code": "toilets", "label": "如厕"}],
        audiences=[a.value for a in Audience],
        collecting_starts_at=now - timedelta(days=2),
        collecting_ends_at=now + timedelta(days=1),
        voting_starts_at=now - timedelta(days=1),
        voting_ends_at=now + timedelta(days=2),
        closes_at=now + timedelta(days=3),
        phase=Phase.VOTING,
        phase_state="collecting+voting",
        votes_per_minute_ip=10**9,  # every bench request comes from 127.0.0.1
        votes_per_minute_person=10**6,
        created_at=now,
        updated_at=now,
    )
    author = await User.create(role=Role.RESIDENT, wechat_openid="bench-author")
    items = [
        PainPoint(
            campaign=campaign,
            author=author,
            audience=Audience.RESIDENT,
            title=f"老旧小区停车难{i}",
            description="晚上回家找不到车位，只能停在路边。",
            category="parking" if i % 2 else "toilets",
            status=Status.VALID,
            created_at=now,
            updated_at=now,
        )
        for i in range(PAIN_POINTS)
    ]
    await PainPoint.bulk_create(items, batch_size=1000)
    return campaign.public_id, [item.public_id for item in items[:HOT]]


async def _court() -> tuple[str, str]:
    """A badminton court open every day; the race is for tomorrow 15:00 (Beijing time)."""
    venue = await Venue.create(
        **checked_row(
            {
                "kind": "sports_venue",
                "name": "性能测试羽毛球馆",
                "lat": 31.8206,
                "lng": 117.2272,
                "opening_hours": "Mo-Su 06:00-22:00",
                "attributes": {"sports": ["羽毛球"]},
            }
        )
    )
    unit = await BookableUnit.create(venue=venue, name="1号场", price_text="每小时 30 元")
    tomorrow = (datetime.now(SHANGHAI) + timedelta(days=1)).date()
    start = datetime(tomorrow.year, tomorrow.month, tomorrow.day, 15, tzinfo=SHANGHAI)
    return unit.public_id, start.isoformat()
