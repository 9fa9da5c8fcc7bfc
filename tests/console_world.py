"""A small world for the console's tests: one account per role, a campaign with pain points to
moderate (two near-duplicates among them), votes, published challenges (one past its deadline
with a submitted proposal and an assigned judge), a court, a parking lot with history.

Written straight to the database, so the in-process tests and the browser tests' real server
(seeded by ``python -m tests.console_world``) start from the same state.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime, timedelta

from backend.clock import SHANGHAI
from backend.models import Role, User
from backend.security import hash_password
from crowdsource.challenges.models import (
    Challenge,
    ChallengeSource,
    ChallengeStatus,
    JudgeAssignment,
    Proposal,
    ProposalStatus,
    ProposalVersion,
    Vendor,
    VendorMember,
    VendorStatus,
)
from crowdsource.models import Audience, Campaign, PainPoint, Status, Vote
from crowdsource.schemas import DEFAULT_CATEGORIES
from venues.bookings.models import BookableUnit
from venues.models import ParkingObservation, Venue, VenueKind

PASSWORD = "console-pass-2026"  # noqa: S105 - test accounts
USERNAMES = {
    Role.BUREAU_ADMIN: "c_admin",
    Role.CURATOR: "c_curator",
    Role.JUDGE: "c_judge",
    Role.VENDOR: "c_vendor",
    Role.VENUE_OPERATOR: "c_operator",
    Role.STREET_WORKER: "c_street",
}
RUBRIC = [
    {"criterion": "可行性", "weight": 50, "description": ""},
    {"criterion": "创新性", "weight": 50, "description": ""},
]
DUPLICATES = ("小区门口晚上停车太难", "小区门口夜间停车位严重不足")


@dataclass
class World:
    campaign: str
    submitted: list[str]
    duplicates: tuple[str, str]
    valid: list[str]
    judged_challenge: str
    open_challenge: str
    proposal: str
    court: str
    parking: str


async def seed(now: datetime | None = None) -> World:
    now = now or datetime.now(SHANGHAI)
    hashed = hash_password(PASSWORD)
    users = {
        role: await User.create(
            username=name,
            password_hash=hashed,
            role=role,
            display_name={
                "c_admin": "局管理员",
                "c_curator": "策展人小王",
                "c_judge": "评委老李",
                "c_vendor": "企业联系人",
                "c_operator": "场馆运营",
                "c_street": "街道小张",
            }[name],
            street_code="340104011" if role == Role.STREET_WORKER else None,
        )
        for role, name in USERNAMES.items()
    }
    residents = [
        await User.create(role=Role.RESIDENT, wechat_openid=f"console-{n}", display_name=f"居民{n}")
        for n in range(6)
    ]
    campaign = await Campaign.create(
        title="2026 合肥城市痛难点征集",
        description="说出你身边的难题",
        categories=[{"code": c, "label": label} for c, label in DEFAULT_CATEGORIES],
        audiences=[a.value for a in Audience],
        collecting_starts_at=now - timedelta(days=3),
        collecting_ends_at=now + timedelta(days=20),
        voting_starts_at=now - timedelta(days=3),
        voting_ends_at=now + timedelta(days=30),
        closes_at=now + timedelta(days=60),
        phase="collecting",
        phase_state="collecting+voting",
        # Post-moderated, so submitted items are public and the moderation queue can suggest them
        # as duplicates (under pre-moderation, similar items are the public ones only).
        moderation="post",
        created_by=users[Role.CURATOR].public_id,
        created_at=now - timedelta(days=4),
        updated_at=now - timedelta(days=4),
    )

    async def pain_point(title: str, status: Status, n: int, **extra: object) -> PainPoint:
        return await PainPoint.create(
            campaign=campaign,
            author=residents[n % len(residents)],
            audience=Audience.RESIDENT,
            title=title,
            description=f"{title}，居民反映多次，希望有关部门尽快解决（{n}）。",
            category=extra.pop("category", "parking"),
            status=status,
            district=extra.pop("district", "蜀山区"),
            created_at=now - timedelta(days=2, hours=n),
            updated_at=now - timedelta(days=2, hours=n),
            **extra,
        )

    dup_a = await pain_point(DUPLICATES[0], Status.SUBMITTED, 0, lat=31.838, lng=117.213)
    dup_b = await pain_point(DUPLICATES[1], Status.SUBMITTED, 1, lat=31.839, lng=117.214)
    other = await pain_point("公园里找不到公共厕所", Status.SUBMITTED, 2, category="public_toilet")
    spam = await pain_point("广告：低价出售二手车辆", Status.SUBMITTED, 3, category="other")
    valid = [
        await pain_point(
            "老旧小区没有电梯，老人上下楼难",
            Status.VALID,
            4,
            category="elderly_care",
            district="庐阳区",
            lat=31.866,
            lng=117.276,
        ),
        await pain_point(
            "医院周边停车排长队", Status.VALID, 5, district="包河区", lat=31.853, lng=117.292
        ),
        await pain_point(
            "社区食堂太少，老人吃饭不方便",
            Status.VALID,
            6,
            category="elderly_care",
            district="瑶海区",
            lat=31.867,
            lng=117.310,
        ),
    ]
    for n, resident in enumerate(residents):
        for item in (dup_a, dup_b, valid[0])[: 1 + n % 3]:
            await Vote.create(
                pain_point=item,
                campaign=campaign,
                user=resident,
                audience=Audience.RESIDENT,
                created_at=now - timedelta(days=1, hours=n),
            )
    vendor = await Vendor.create(
        name="合肥智行科技有限公司",
        uscc="913401005830192086",
        contact_name="赵经理",
        contact_phone="0551-65550000",
        status=VendorStatus.VERIFIED,
        created_at=now - timedelta(days=30),
        verified_at=now - timedelta(days=29),
    )
    await VendorMember.create(vendor=vendor, user=users[Role.VENDOR], is_owner=True, created_at=now)

    async def challenge(
        number: int, title: str, deadline: datetime, source: PainPoint
    ) -> Challenge:
        row = await Challenge.create(
            campaign=campaign,
            number=number,
            title=title,
            category=source.category,
            problem_statement=f"{title}：需要一套可落地的解决方案。",
            owning_department="市数据资源局",
            rubric=RUBRIC,
            submission_deadline=deadline,
            status=ChallengeStatus.PUBLISHED,
            created_by=users[Role.CURATOR].public_id,
            created_at=now - timedelta(days=10),
            updated_at=now - timedelta(days=10),
            published_at=now - timedelta(days=9),
        )
        await ChallengeSource.create(challenge=row, pain_point=source)
        return row

    judged = await challenge(1, "老旧小区加装电梯的协调难题", now - timedelta(days=1), valid[0])
    open_one = await challenge(2, "医院周边停车预约", now + timedelta(days=14), valid[1])
    await JudgeAssignment.create(
        challenge=judged,
        judge=users[Role.JUDGE],
        assigned_by=users[Role.CURATOR].public_id,
        assigned_at=now - timedelta(days=5),
    )
    proposal = await Proposal.create(
        challenge=judged,
        vendor=vendor,
        title="电梯加装协商平台",
        summary="线上征询与补贴测算",
        body="为每栋楼建立线上征询，自动测算分摊。",
        status=ProposalStatus.SUBMITTED,
        versions_submitted=1,
        created_at=now - timedelta(days=3),
        updated_at=now - timedelta(days=3),
        submitted_at=now - timedelta(days=3),
    )
    await ProposalVersion.create(
        proposal=proposal,
        number=1,
        title=proposal.title,
        summary=proposal.summary,
        body=proposal.body,
        submitted_by=users[Role.VENDOR].public_id,
        submitted_at=now - timedelta(days=3),
    )
    court = await Venue.create(
        kind=VenueKind.SPORTS_VENUE,
        name="荷叶地羽毛球馆",
        address="蜀山区荷叶地路 1 号",
        district="蜀山区",
        street="荷叶地街道",
        lat=31.838,
        lng=117.213,
        opening_hours="Mo-Fr 08:00-21:00; Sa,Su 09:00-18:00; PH off",
        attributes={"sports": ["羽毛球"], "accessible": False},
        operator=users[Role.VENUE_OPERATOR],
    )
    await BookableUnit.create(venue=court, name="1 号场")
    parking = await Venue.create(
        kind=VenueKind.PARKING_LOT,
        name="三孝口公共停车场",
        district="庐阳区",
        street="三孝口街道",
        lat=31.866,
        lng=117.276,
        opening_hours="24/7",
        attributes={
            "capacity": 200,
            "accessible": False,
            "accessible_spaces": 0,
            "ev_chargers": 0,
            "price_text": "",
            "max_height_m": None,
            "free_spaces": None,
            "observed_at": None,
        },
        operator=users[Role.VENUE_OPERATOR],
    )
    for n in range(12):
        await ParkingObservation.create(
            venue=parking,
            free_spaces=150 - n * 10,
            observed_at=now - timedelta(hours=12 - n),
            received_at=now - timedelta(hours=12 - n),
        )
    return World(
        campaign=campaign.public_id,
        submitted=[dup_a.public_id, dup_b.public_id, other.public_id, spam.public_id],
        duplicates=(dup_a.public_id, dup_b.public_id),
        valid=[v.public_id for v in valid],
        judged_challenge=judged.public_id,
        open_challenge=open_one.public_id,
        proposal=proposal.public_id,
        court=court.public_id,
        parking=parking.public_id,
    )


async def _main() -> None:
    """Migrate and seed the database of the current environment's settings (emptied first)."""
    import json
    import sys

    from tortoise import connections

    from backend import db
    from backend.config import Settings
    from server import orm

    settings = Settings.from_env()
    await orm.migrate(settings)
    await orm.open_database(settings)
    conn = connections.get("default")
    tables = db.table_names()
    if settings.is_sqlite:
        await conn.execute_script("".join(f'DELETE FROM "{t}";' for t in tables))
    else:
        quoted = ", ".join(f'"{t}"' for t in tables)
        await conn.execute_script(f"TRUNCATE {quoted} RESTART IDENTITY CASCADE;")
    world = await seed()
    await db.close_database()
    json.dump(world.__dict__, sys.stdout)


if __name__ == "__main__":
    asyncio.run(_main())
