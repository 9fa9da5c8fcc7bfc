"""A small world for the console's tests: one account per role, a campaign with pain points to
moderate (two near-duplicates among them), votes, published challenges (one past its deadline
with a submitted proposal and an assigned judge), a court, a parking lot with history, the
street worker's communities and (given the residents' key ring) a household of two residents, and
a resident of another street with its own street worker.

Written straight to the database, so the in-process tests and the browser tests' real server
(seeded by ``python -m tests.console_world``) start from the same state.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from backend.clock import SHANGHAI
from backend.models import Role, User, new_public_id
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
from residents.crypto import KeyRing
from residents.identity import id_for
from residents.models import Community, Household, Relation, Resident, ResidentVersion
from residents.presenters import Clear, tag_string
from residents.registry import sealed
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
STREET = "340104011"  # 荷叶地街道, c_street's street
OTHER_STREET = "340104001"  # 三里庵街道
OTHER_STREET_USER = "c_street_other"
COMMUNITIES = ("荷叶地社区", "西园新村社区")
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
    community: str = ""
    household: str = ""
    resident: str = ""
    other_resident: str = ""


async def _resident(
    ring: KeyRing,
    community: Community,
    household: Household | None,
    *,
    name: str,
    born: date,
    sequence: int,
    relation: Relation,
    now: datetime,
    tags: tuple[str, ...] = (),
) -> Resident:
    """A resident written as the registry writes one (sealed values, a first history row)."""
    number = id_for("340104", born, sequence)
    pid = new_public_id()
    resident = await Resident.create(
        public_id=pid,
        street_code=community.street_code,
        community_id=community.id,
        household_id=household.id if household else None,
        relation=relation,
        gender="M" if sequence % 2 else "F",
        birth_date=born,
        tags=tag_string(list(tags)),
        created_at=now,
        updated_at=now,
        **sealed(ring, pid, Clear(name=name, id_number=number, phone=None, notes=None)),
    )
    await ResidentVersion.create(
        resident_id=resident.id, version=1, action="create", actor="seed",
        actor_role="street_worker", at=now, changes={},
    )  # fmt: skip
    return resident


async def _residents(ring: KeyRing | None, now: datetime) -> dict[str, str]:
    """The street's communities; with a key ring, a household of two and another street's one."""
    communities = [await Community.create(street_code=STREET, name=n) for n in COMMUNITIES]
    found = {"community": communities[0].public_id}
    if ring is None:
        return found
    home = await Household.create(
        street_code=STREET, community=communities[0], address="荷叶地路 8 号 2 栋 301"
    )
    head = await _resident(
        ring, communities[0], home, name="张建国", born=date(1950, 3, 7), sequence=13,
        relation=Relation.HEAD, now=now, tags=("elderly_alone",),
    )  # fmt: skip
    await _resident(
        ring, communities[0], home, name="李秀英", born=date(1952, 8, 1), sequence=24,
        relation=Relation.SPOUSE, now=now,
    )  # fmt: skip
    elsewhere = await Community.create(street_code=OTHER_STREET, name="三里庵社区")
    other = await _resident(
        ring, elsewhere, None, name="王其他", born=date(1980, 1, 1), sequence=35,
        relation=Relation.HEAD, now=now,
    )  # fmt: skip
    found.update(household=home.public_id, resident=head.public_id, other_resident=other.public_id)
    return found


async def seed(now: datetime | None = None, ring: KeyRing | None = None) -> World:
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
            street_code=STREET if role == Role.STREET_WORKER else None,
        )
        for role, name in USERNAMES.items()
    }
    await User.create(
        username=OTHER_STREET_USER,
        password_hash=hashed,
        role=Role.STREET_WORKER,
        display_name="三里庵街道小刘",
        street_code=OTHER_STREET,
    )
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
        **await _residents(ring, now),
    )


async def _main() -> None:
    """Migrate and seed the database of the current environment's settings (emptied first)."""
    import json
    import sys

    from tortoise import connections

    from backend import db
    from backend.config import Settings
    from residents.settings import load_key_ring
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
    world = await seed(ring=load_key_ring(settings))
    await db.close_database()
    json.dump(world.__dict__, sys.stdout)


if __name__ == "__main__":
    asyncio.run(_main())
