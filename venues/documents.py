"""The searchable projection of a venue and its state at a moment (open now, parking state).

The same projection feeds the database search backend (built from rows) and the Elasticsearch
index (stored as ``_source``), so both answer from identical data.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

from backend import hours
from backend.geo import Point
from venues.models import Venue, VenueKind, VenueStatus

# Parking availability older than this is reported as stale (state "unknown").
PARKING_STALE_AFTER = timedelta(minutes=15)  # default of SMARTCIRCLE_PARKING_STALE_MINUTES
# Fewer free spaces than this share of capacity (or than FEW_MIN) counts as "few".
FEW_SHARE = 0.1
FEW_MIN = 5


@dataclass(frozen=True, slots=True)
class VenueDoc:
    """What search needs of a venue."""

    id: str
    kind: str
    name: str
    address: str
    district: str
    street: str
    description: str
    lat: float
    lng: float
    opening_hours: str | None
    status: str
    accessible: bool
    capacity: int | None = None
    free_spaces: int | None = None
    observed_at: str | None = None

    @property
    def point(self) -> Point:
        return Point(self.lat, self.lng)

    def to_source(self) -> dict[str, Any]:
        """The Elasticsearch document (``location`` is the geo_point)."""
        source = asdict(self)
        source["location"] = {"lat": self.lat, "lon": self.lng}
        return source

    @classmethod
    def from_source(cls, source: dict[str, Any]) -> VenueDoc:
        names = cls.__dataclass_fields__
        return cls(**{k: v for k, v in source.items() if k in names})


# The columns a VenueDoc is built from (see ``doc_from_row``).
DOC_COLUMNS = (
    "public_id",
    "kind",
    "name",
    "address",
    "district",
    "street",
    "description",
    "lat",
    "lng",
    "opening_hours",
    "status",
    "accessible",
    "attributes",
)


def _text(value: Any) -> str:
    return str(getattr(value, "value", value))


def doc_from_row(row: dict[str, Any]) -> VenueDoc:
    """The projection of a venue row given as a dict of ``DOC_COLUMNS``."""
    attrs = row["attributes"] or {}
    parking = _text(row["kind"]) == VenueKind.PARKING_LOT.value
    return VenueDoc(
        id=row["public_id"],
        kind=_text(row["kind"]),
        name=row["name"],
        address=row["address"],
        district=row["district"],
        street=row["street"],
        description=row["description"],
        lat=row["lat"],
        lng=row["lng"],
        opening_hours=row["opening_hours"],
        status=_text(row["status"]),
        accessible=bool(row["accessible"]),
        capacity=attrs.get("capacity") if parking else None,
        free_spaces=attrs.get("free_spaces") if parking else None,
        observed_at=attrs.get("observed_at") if parking else None,
    )


def venue_doc(venue: Venue) -> VenueDoc:
    return doc_from_row({name: getattr(venue, name) for name in DOC_COLUMNS})


@dataclass(frozen=True, slots=True)
class LiveState:
    open_now: bool
    next_change: datetime | None
    parking_state: str | None = None
    stale: bool | None = None

    @property
    def has_free_spaces(self) -> bool:
        return self.parking_state in ("many", "few")


def open_state(
    status: str, opening_hours: str | None, now: datetime
) -> tuple[bool, datetime | None]:
    """Whether a venue is open at ``now`` and when that changes next (None: never)."""
    if status != VenueStatus.OPEN.value:
        return False, None
    if opening_hours is None:
        # No published hours: treated as closed (unknown), never as open.
        return False, None
    state = hours.state_at(opening_hours, now)
    return state.open_now, state.next_change


def live_state(
    doc: VenueDoc, now: datetime, stale_after: timedelta = PARKING_STALE_AFTER
) -> LiveState:
    """Open now, next change and (for parking) the coarse availability at ``now``."""
    open_now, next_change = open_state(doc.status, doc.opening_hours, now)
    if doc.kind != VenueKind.PARKING_LOT.value:
        return LiveState(open_now=open_now, next_change=next_change)
    stale = True
    if doc.observed_at is not None:
        stale = now - datetime.fromisoformat(doc.observed_at) > stale_after
    if not open_now:
        parking_state = "closed"
    elif doc.free_spaces is None or stale:
        parking_state = "unknown"
    elif doc.free_spaces == 0:
        parking_state = "full"
    elif doc.free_spaces < max(FEW_MIN, (doc.capacity or 0) * FEW_SHARE):
        parking_state = "few"
    else:
        parking_state = "many"
    return LiveState(open_now, next_change, parking_state, stale)
