"""Key rotation: re-encrypt every stored value under the current key, in batches, online.

To rotate: put a new key first in ``SMARTCIRCLE_RESIDENT_KEYS`` (keep the old ones after it),
restart the app (new writes now use the new key, old values still decrypt), then run
``python -m residents rotate-keys`` (or ``POST /api/v1/residents/key-rotations``). The rotation
walks the rows whose ``key_id`` is not the current one in id order, a batch at a time; each row
is rewritten only if it has not changed since it was read (same ``version`` and ``key_id``), so
a concurrent edit — which writes under the current key anyway — is never overwritten. One runner
at a time holds the rotation (a heartbeat on its row); a runner that stops is taken over after a
minute by the next ``rotate-keys`` or by the app at start-up. When no row is left under an old
key, the old key can be removed from the ring.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Callable
from datetime import timedelta

from backend.context import AppContext
from backend.errors import NotFound
from residents.crypto import KeyRing
from residents.models import FormSubmission, ImportJob, JobStatus, KeyRotation, Resident
from residents.presenters import CIPHER_FIELDS, aad
from residents.schemas import RotationOut
from residents.settings import resident_settings

log = logging.getLogger("smartcircle.residents.rotation")
STALE = timedelta(seconds=60)
RUNNER = f"{socket.gethostname()}:{os.getpid()}"
_TASKS: set[asyncio.Task[KeyRotation]] = set()


async def pending(ring: KeyRing) -> int:
    """Rows still under an old key."""
    current = ring.current
    return (
        await Resident.exclude(key_id=current).count()
        + await FormSubmission.exclude(key_id=current).count()
        + await ImportJob.exclude(key_id=current).exclude(errors_cipher=None).count()
    )


async def start_rotation(ctx: AppContext) -> KeyRotation:
    """The running rotation to the current key, or a new one."""
    ring = resident_settings(ctx).ring
    running = await KeyRotation.filter(status=JobStatus.RUNNING, target_key_id=ring.current).first()
    if running is not None:
        return running
    await KeyRotation.filter(status=JobStatus.RUNNING).update(
        status=JobStatus.FAILED, error="superseded by a rotation to a newer key"
    )
    return await KeyRotation.create(
        target_key_id=ring.current, total=await pending(ring), started_at=ctx.clock.now()
    )


async def _claim(ctx: AppContext, rotation: KeyRotation) -> bool:
    now = ctx.clock.now()
    claimed = await KeyRotation.filter(id=rotation.id, status=JobStatus.RUNNING).filter(
        heartbeat_at__isnull=True
    ).update(runner=RUNNER, heartbeat_at=now) or await KeyRotation.filter(
        id=rotation.id, status=JobStatus.RUNNING, heartbeat_at__lt=now - STALE
    ).update(runner=RUNNER, heartbeat_at=now)
    if not claimed:
        claimed = await KeyRotation.filter(
            id=rotation.id, status=JobStatus.RUNNING, runner=RUNNER
        ).update(heartbeat_at=now)
    return bool(claimed)


async def run_rotation(
    ctx: AppContext,
    rotation: KeyRotation,
    *,
    batch: int | None = None,
    progress: Callable[[KeyRotation], None] | None = None,
) -> KeyRotation:
    """Re-encrypt batch after batch until nothing is left under an old key."""
    ring = resident_settings(ctx).ring
    batch = batch or resident_settings(ctx).rotation_batch
    if rotation.target_key_id != ring.current or not await _claim(ctx, rotation):
        return rotation
    try:
        for table in (_residents, _forms, _imports, _residents):
            after = 0
            while True:
                after, rewritten = await table(ring, after, batch)
                if after == 0:
                    break
                rotation.done += rewritten
                rotation.heartbeat_at = ctx.clock.now()
                await KeyRotation.filter(id=rotation.id).update(
                    done=rotation.done, heartbeat_at=rotation.heartbeat_at
                )
                if progress is not None:
                    progress(rotation)
                await asyncio.sleep(0)  # let requests in between batches
        left = await pending(ring)
        rotation.status = JobStatus.DONE if left == 0 else JobStatus.RUNNING
        if left == 0:
            rotation.finished_at = ctx.clock.now()
            rotation.done = max(rotation.done, rotation.total)
        await rotation.save()
    except Exception:
        log.exception("key rotation batch failed", extra={"rotation": rotation.public_id})
        await KeyRotation.filter(id=rotation.id).update(heartbeat_at=None)
        raise
    return rotation


async def _residents(ring: KeyRing, after: int, batch: int) -> tuple[int, int]:
    rows = (
        await Resident.filter(id__gt=after).exclude(key_id=ring.current).order_by("id").limit(batch)
    )
    rewritten = 0
    for row in rows:
        updates: dict[str, str | None] = {"key_id": ring.current}
        for field, column in CIPHER_FIELDS.items():
            stored = getattr(row, column)
            if stored is not None:
                value = ring.decrypt(stored, aad(field, row.public_id))
                updates[column] = ring.encrypt(value, aad(field, row.public_id))
        rewritten += await Resident.filter(
            id=row.id, version=row.version, key_id=row.key_id
        ).update(**updates)
    return (rows[-1].id if rows else 0), rewritten


async def _forms(ring: KeyRing, after: int, batch: int) -> tuple[int, int]:
    rows = (
        await FormSubmission.filter(id__gt=after)
        .exclude(key_id=ring.current)
        .order_by("id")
        .limit(batch)
    )
    rewritten = 0
    for row in rows:
        value = ring.decrypt(row.values_cipher, f"form:{row.public_id}")
        rewritten += await FormSubmission.filter(id=row.id, key_id=row.key_id).update(
            key_id=ring.current, values_cipher=ring.encrypt(value, f"form:{row.public_id}")
        )
    return (rows[-1].id if rows else 0), rewritten


async def _imports(ring: KeyRing, after: int, batch: int) -> tuple[int, int]:
    rows = (
        await ImportJob.filter(id__gt=after, errors_cipher__isnull=False)
        .exclude(key_id=ring.current)
        .order_by("id")
        .limit(batch)
    )
    rewritten = 0
    for row in rows:
        assert row.errors_cipher is not None
        value = ring.decrypt(row.errors_cipher, f"import:{row.public_id}")
        rewritten += await ImportJob.filter(id=row.id, key_id=row.key_id).update(
            key_id=ring.current, errors_cipher=ring.encrypt(value, f"import:{row.public_id}")
        )
    return (rows[-1].id if rows else 0), rewritten


def rotation_out(rotation: KeyRotation) -> RotationOut:
    total = max(rotation.total, rotation.done)
    finished = rotation.status == JobStatus.DONE
    return RotationOut(
        id=rotation.public_id,
        target_key_id=rotation.target_key_id,
        status=rotation.status,
        total=total,
        done=rotation.done,
        percent=100 if finished or total == 0 else min(99, rotation.done * 100 // total),
        remaining=0 if finished else max(0, total - rotation.done),
        started_at=rotation.started_at,
        finished_at=rotation.finished_at,
    )


def start_in_background(ctx: AppContext, rotation: KeyRotation) -> None:
    task = asyncio.create_task(run_rotation(ctx, rotation))
    _TASKS.add(task)
    task.add_done_callback(_TASKS.discard)


async def get_rotation(public_id: str) -> KeyRotation:
    if public_id == "latest":
        rotation = await KeyRotation.all().order_by("-id").first()
    else:
        rotation = await KeyRotation.filter(public_id=public_id).first()
    if rotation is None:
        raise NotFound("未找到密钥轮换任务", code="rotation_not_found")
    return rotation


async def resume_rotation(ctx: AppContext) -> None:
    """At start-up: continue a rotation to this ring's current key whose runner stopped."""
    ring = resident_settings(ctx).ring
    rotation = await KeyRotation.filter(
        status=JobStatus.RUNNING,
        target_key_id=ring.current,
        heartbeat_at__lt=ctx.clock.now() - STALE,
    ).first()
    if rotation is not None:
        start_in_background(ctx, rotation)


async def stop_rotation(ctx: AppContext) -> None:
    for task in list(_TASKS):
        task.cancel()
