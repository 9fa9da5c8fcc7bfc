"""Venue rules: create, edit, close, read; every change also lands in the index outbox."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from tortoise.exceptions import IntegrityError

from backend import geo
from backend.access import Principal, parse_model
from backend.audit import record
from backend.clock import to_local
from backend.context import AppContext
from backend.errors import Conflict, Forbidden, NotFound, ValidationFailed
from backend.models import Role, User
from backend.uow import unit_of_work
from venues import outbox
from venues.documents import live_state, venue_doc
from venues.models import Book, Holding, ParkingObservation, Venue, VenueKind, VenueStatus
from venues.schemas import (
    KIND_ATTRIBUTES,
    AvailabilityHistory,
    AvailabilityIn,
    AvailabilityOut,
    HoldingsFeed,
    HoldingsResult,
    Observation,
    VenueClose,
    VenueCreate,
    VenuePatch,
)

# Parking attributes that only the availability endpoint writes (ordered, kept as history).
LIVE_PARKING_KEYS = frozenset({"free_spaces", "observed_at"})
# Clock skew allowed between an operator's system and ours.
FUTURE_TOLERANCE = timedelta(seconds=5)


async def get_venue_or_raise(public_id: str) -> Venue:
    """The venue with this public id, not removed, with its operator, or 404."""
    venue = (
        await Venue.filter(public_id=public_id)
        .exclude(status=VenueStatus.REMOVED)
        .select_related("operator")
        .first()
    )
    if venue is None:
        raise NotFound("场所不存在", code="venue_not_found")
    return venue


def parse_attributes(kind: VenueKind, data: dict[str, Any], *, ctx: AppContext) -> dict[str, Any]:
    """Validate kind attributes; failures name ``attributes.<field>``."""
    try:
        attrs = parse_model(KIND_ATTRIBUTES[kind], data, "attributes")
    except ValidationFailed as exc:
        fields = {k if k == "attributes" else f"attributes.{k}": v for k, v in exc.fields.items()}
        raise ValidationFailed(fields=fields) from None
    observed = getattr(attrs, "observed_at", None)
    if observed is not None and observed > ctx.clock.now() + FUTURE_TOLERANCE:
        raise ValidationFailed(fields={"attributes.observed_at": "观测时间不能晚于当前时间"})
    return attrs.model_dump(mode="json")


def _accessible(kind: VenueKind, attributes: dict[str, Any]) -> bool:
    return KIND_ATTRIBUTES[kind].model_validate(attributes).is_accessible()


async def _operator_or_raise(public_id: str | None) -> User | None:
    if public_id is None:
        return None
    user = await User.filter(public_id=public_id, is_active=True).first()
    if user is None or user.role != Role.VENUE_OPERATOR:
        raise ValidationFailed(fields={"operator_id": "不是有效的场馆运营方账号"})
    return user


async def create_venue(*, ctx: AppContext, actor: Principal, data: VenueCreate) -> Venue:
    """Create a venue (bureau_admin)."""
    point = geo.to_wgs84(data.lat, data.lng, data.coord)
    attributes = parse_attributes(data.kind, data.attributes, ctx=ctx)
    operator = await _operator_or_raise(data.operator_id)
    async with unit_of_work():
        venue = await Venue.create(
            kind=data.kind,
            name=data.name,
            address=data.address,
            district=data.district,
            street=data.street,
            lat=point.lat,
            lng=point.lng,
            phone=data.phone,
            description=data.description,
            photos=[str(u) for u in data.photos],
            opening_hours=data.opening_hours,
            verified_at=data.verified_at,
            attributes=attributes,
            accessible=_accessible(data.kind, attributes),
            operator=operator,
        )
        await outbox.enqueue(venue_public_id=venue.public_id, now=ctx.clock.now())
        await record(ctx=ctx, actor=actor, action="venue.create", obj=("venue", venue.public_id))
    return venue


def may_manage(actor: Principal, venue: Venue) -> bool:
    """Whether the actor is the bureau admin or this venue's own operator."""
    if actor.role == Role.BUREAU_ADMIN:
        return True
    return (
        actor.role == Role.VENUE_OPERATOR
        and venue.operator is not None
        and venue.operator.public_id == actor.user_id
    )


async def update_venue(
    *, ctx: AppContext, actor: Principal, public_id: str, data: VenuePatch
) -> Venue:
    """Edit a venue (bureau_admin, or the venue's own operator)."""
    venue = await get_venue_or_raise(public_id)
    if not may_manage(actor, venue):
        raise Forbidden("只能编辑自己运营的场所", code="not_venue_operator")
    given = data.model_fields_set - {"coord"}
    if "operator_id" in given and actor.role != Role.BUREAU_ADMIN:
        raise Forbidden("只有数据资源局可以更换运营方", code="forbidden")
    live = sorted(LIVE_PARKING_KEYS & set(data.attributes or {}))
    if live:
        message = "实时空位请用 PUT /api/v1/parking/{id}/availability 发布"
        raise ValidationFailed(fields={f"attributes.{key}": message for key in live})
    changed: set[str] = set()
    for name in ("name", "address", "district", "street", "phone", "description"):
        if name in given:
            value = getattr(data, name)
            if value is None:
                raise ValidationFailed(fields={name: "不能为 null"})
            setattr(venue, name, value)
            changed.add(name)
    if "opening_hours" in given:
        venue.opening_hours = data.opening_hours
        changed.add("opening_hours")
    if "verified_at" in given:
        venue.verified_at = data.verified_at
        changed.add("verified_at")
    if "photos" in given:
        venue.photos = [str(u) for u in data.photos or []]
        changed.add("photos")
    if data.lat is not None and data.lng is not None:
        point = geo.to_wgs84(data.lat, data.lng, data.coord)
        venue.lat, venue.lng = point.lat, point.lng
        changed.update(("lat", "lng"))
    if "operator_id" in given:
        venue.operator = await _operator_or_raise(data.operator_id)  # type: ignore[assignment]
        changed.add("operator_id")
    async with unit_of_work():
        if "attributes" in given:
            # Merge into the stored attributes as they are now (a parking count may have been
            # published since we read the venue), holding the row until we commit.
            current = await Venue.filter(id=venue.id).select_for_update().first()
            stored = current.attributes if current is not None else venue.attributes
            merged = {**(stored or {}), **(data.attributes or {})}
            venue.attributes = parse_attributes(venue.kind, merged, ctx=ctx)
            venue.accessible = _accessible(venue.kind, venue.attributes)
            changed.update(("attributes", "accessible"))
        await venue.save(update_fields=sorted(changed | {"updated_at"}))
        await outbox.enqueue(venue_public_id=venue.public_id, now=ctx.clock.now())
        await record(
            ctx=ctx,
            actor=actor,
            action="venue.update",
            obj=("venue", venue.public_id),
            detail={"fields": sorted(given)},
        )
    return venue


async def close_venue(
    *, ctx: AppContext, actor: Principal, public_id: str, data: VenueClose
) -> Venue:
    """Close a venue for a while, or remove it for good (bureau_admin)."""
    venue = await get_venue_or_raise(public_id)
    venue.status = VenueStatus.REMOVED if data.permanent else VenueStatus.TEMPORARILY_CLOSED
    venue.closed_reason = data.reason
    async with unit_of_work():
        await venue.save(update_fields=["status", "closed_reason", "updated_at"])
        await outbox.enqueue(venue_public_id=venue.public_id, now=ctx.clock.now())
        await record(
            ctx=ctx,
            actor=actor,
            action="venue.remove" if data.permanent else "venue.close",
            obj=("venue", venue.public_id),
            reason=data.reason,
        )
    return venue


async def reopen_venue(*, ctx: AppContext, actor: Principal, public_id: str) -> Venue:
    """Reopen a temporarily closed venue (bureau_admin)."""
    venue = await get_venue_or_raise(public_id)
    venue.status = VenueStatus.OPEN
    venue.closed_reason = ""
    async with unit_of_work():
        await venue.save(update_fields=["status", "closed_reason", "updated_at"])
        await outbox.enqueue(venue_public_id=venue.public_id, now=ctx.clock.now())
        await record(ctx=ctx, actor=actor, action="venue.reopen", obj=("venue", venue.public_id))
    return venue


async def publish_availability(
    *, ctx: AppContext, actor: Principal, public_id: str, data: AvailabilityIn
) -> AvailabilityOut:
    """Record an operator's free-spaces count: in order, never from the future, kept as history."""
    now = ctx.clock.now()
    if data.observed_at > now + FUTURE_TOLERANCE:
        raise ValidationFailed(fields={"observed_at": "统计时间不能晚于当前时间"})
    async with unit_of_work():
        venue = (
            await Venue.filter(public_id=public_id)
            .exclude(status=VenueStatus.REMOVED)
            .select_for_update()
            .first()
        )
        if venue is None or venue.kind != VenueKind.PARKING_LOT:
            raise NotFound("停车场不存在", code="parking_not_found")
        await venue.fetch_related("operator")
        if not may_manage(actor, venue):
            raise Forbidden("只能发布自己运营的停车场的空位", code="not_venue_operator")
        attrs = dict(venue.attributes or {})
        capacity = attrs.get("capacity")
        if capacity is not None and data.free_spaces > capacity:
            raise ValidationFailed(fields={"free_spaces": f"空余车位不能超过总车位 {capacity}"})
        last = attrs.get("observed_at")
        if last is not None and data.observed_at <= datetime.fromisoformat(last):
            raise Conflict(
                "统计时间早于或等于已发布的最新数据",
                code="stale_observation",
                fields={"observed_at": f"须晚于 {last}"},
            )
        attrs["free_spaces"] = data.free_spaces
        attrs["observed_at"] = data.observed_at.isoformat()
        venue.attributes = parse_attributes(venue.kind, attrs, ctx=ctx)
        await venue.save(update_fields=["attributes", "updated_at"])
        await ParkingObservation.create(
            venue=venue, free_spaces=data.free_spaces, observed_at=data.observed_at, received_at=now
        )
        await outbox.enqueue(venue_public_id=venue.public_id, now=now)
    state = live_state(venue_doc(venue), now, ctx.settings.parking_stale_after)
    return AvailabilityOut(
        venue_id=venue.public_id,
        free_spaces=data.free_spaces,
        observed_at=to_local(data.observed_at),
        parking_state=state.parking_state or "unknown",
        stale=bool(state.stale),
    )


async def upsert_holdings(
    *, ctx: AppContext, actor: Principal, public_id: str, feed: HoldingsFeed
) -> HoldingsResult:
    """Bulk upsert one reading space's holdings by ISBN (bureau_admin or its operator)."""
    venue = await get_venue_or_raise(public_id)
    if not may_manage(actor, venue):
        raise Forbidden("只能更新自己运营的场所的馆藏", code="not_venue_operator")
    if venue.kind != VenueKind.READING_SPACE:
        raise ValidationFailed(fields={"venue": "只有阅读空间有馆藏"})
    seen: dict[str, int] = {}
    for i, item in enumerate(feed.items):
        if item.isbn in seen:
            raise ValidationFailed(
                fields={f"items.{i}.isbn": f"与 items.{seen[item.isbn]} 的 ISBN 重复"}
            )
        seen[item.isbn] = i
    now = ctx.clock.now()
    try:
        return await _write_holdings(
            ctx=ctx, actor=actor, venue=venue, feed=feed, seen=seen, now=now
        )
    except IntegrityError:  # another feed added the same book or holding at this moment
        raise Conflict("另一份馆藏数据正在写入，请重试", code="holdings_conflict") from None


async def _write_holdings(
    *,
    ctx: AppContext,
    actor: Principal,
    venue: Venue,
    feed: HoldingsFeed,
    seen: dict[str, int],
    now: datetime,
) -> HoldingsResult:
    """The upsert of :func:`upsert_holdings`, in one transaction."""
    async with unit_of_work():
        books = {b.isbn13: b for b in await Book.filter(isbn13__in=list(seen))}
        for item in feed.items:
            book = books.get(item.isbn)
            if book is None:
                books[item.isbn] = await Book.create(
                    isbn13=item.isbn, title=item.title, author=item.author, publisher=item.publisher
                )
            elif (book.title, book.author, book.publisher) != (
                item.title,
                item.author or book.author,
                item.publisher or book.publisher,
            ):
                book.title = item.title
                book.author = item.author or book.author
                book.publisher = item.publisher or book.publisher
                await book.save(update_fields=["title", "author", "publisher"])
        existing = {h.book_id: h for h in await Holding.filter(venue=venue)}
        for item in feed.items:
            book = books[item.isbn]
            holding = existing.pop(book.id, None)
            if holding is None:
                await Holding.create(
                    venue=venue,
                    book=book,
                    copies=item.copies,
                    copies_available=item.copies_available,
                    updated_at=now,
                )
            else:
                holding.copies = item.copies
                holding.copies_available = item.copies_available
                holding.updated_at = now
                await holding.save(update_fields=["copies", "copies_available", "updated_at"])
        removed = 0
        if feed.replace and existing:
            removed = await Holding.filter(id__in=[h.id for h in existing.values()]).delete()
        await record(
            ctx=ctx,
            actor=actor,
            action="venue.holdings",
            obj=("venue", venue.public_id),
            detail={"upserted": len(feed.items), "removed": removed},
        )
    return HoldingsResult(venue_id=venue.public_id, upserted=len(feed.items), removed=removed)


HISTORY_MAX_POINTS = 2000


async def availability_history(
    *, ctx: AppContext, public_id: str, hours: int
) -> AvailabilityHistory:
    """A parking lot's published counts over the last ``hours``, oldest first (for charts)."""
    venue = await get_venue_or_raise(public_id)
    if venue.kind != VenueKind.PARKING_LOT:
        raise NotFound("停车场不存在", code="parking_not_found")
    since = ctx.clock.now() - timedelta(hours=hours)
    rows = (
        await ParkingObservation.filter(venue=venue, observed_at__gte=since)
        .order_by("-observed_at")
        .limit(HISTORY_MAX_POINTS)
    )
    return AvailabilityHistory(
        venue_id=venue.public_id,
        capacity=(venue.attributes or {}).get("capacity"),
        items=[
            Observation(free_spaces=r.free_spaces, observed_at=to_local(r.observed_at))
            for r in reversed(rows)
        ],
    )
