"""Residents: the key ring (production refuses to start without keys, development keys per
installation), and key rotation in batches while requests are served, by the API and the command."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from backend.config import SettingsError
from backend.models import Role
from residents.crypto import KeyRing
from residents.models import FormSubmission, Resident
from residents.rotation import run_rotation, start_rotation
from residents.settings import (
    RESIDENT_SETTINGS,
    ResidentSettings,
    add_development_key,
    load_key_ring,
)
from tests.factories import headers_for
from tests.residents_helpers import create, id_number, worker

REPO = Path(__file__).resolve().parent.parent


def test_production_refuses_to_start_without_keys(settings, tmp_path) -> None:
    production = settings.model_copy(update=dict(environment="production", var_dir=tmp_path))
    with pytest.raises(SettingsError, match="SMARTCIRCLE_RESIDENT_KEYS"):
        ResidentSettings.from_env(production, env={})
    with pytest.raises(SettingsError):
        ResidentSettings.from_env(production, env={"SMARTCIRCLE_RESIDENT_KEYS": "k1:short"})
    good = ResidentSettings.from_env(
        production,
        env={
            "SMARTCIRCLE_RESIDENT_KEYS": "k2:" + _b64() + ",k1:" + _b64(),
            "SMARTCIRCLE_RESIDENT_INDEX_KEY": _b64(),
        },
    )
    assert good.ring.current == "k2" and good.ring.key_ids == ("k2", "k1")
    assert not list(tmp_path.iterdir())  # nothing generated in production


def _b64() -> str:
    import base64

    return base64.b64encode(os.urandom(32)).decode()


def test_development_keys_are_generated_once_per_installation(settings, tmp_path) -> None:
    one = load_key_ring(settings.model_copy(update=dict(var_dir=tmp_path / "a")), env={})
    again = load_key_ring(settings.model_copy(update=dict(var_dir=tmp_path / "a")), env={})
    other = load_key_ring(settings.model_copy(update=dict(var_dir=tmp_path / "b")), env={})
    assert one.keys == again.keys and one.index_key == again.index_key
    assert one.keys != other.keys and one.index_key != other.index_key
    assert oct((tmp_path / "a" / "resident-keys.json").stat().st_mode)[-3:] == "600"


async def test_rotation_while_reading_and_writing(client, ctx) -> None:
    headers = await worker(client)
    phones = {}
    for i in range(24):
        made = await create(
            client, headers, id_number=id_number(), phone=f"1380000{i:04d}", address="路 1 号"
        )
        phones[made["id"]] = f"1380000{i:04d}"
    rid = next(iter(phones))
    form = await client.post(
        f"/api/v1/residents/{rid}/forms",
        json={"template": "home_visit", "typed": {"visit_date": "2026-01-01", "situation": "好"}},
        headers=headers,
    )
    assert form.status_code == 201, form.text
    old = ctx.get(RESIDENT_SETTINGS)
    new_ring = KeyRing(
        keys=[("k-new", os.urandom(32)), *old.ring.keys], index_key=old.ring.index_key
    )
    ctx.provide(RESIDENT_SETTINGS, replace(old, ring=new_ring))
    try:
        rotation = await start_rotation(ctx)
        assert rotation.total == 25
        task = asyncio.create_task(run_rotation(ctx, rotation, batch=3))
        served = 0
        ids = list(phones)
        while not task.done() or served < 6:
            target = ids[served % len(ids)]
            read = await client.get(f"/api/v1/residents/{target}", headers=headers)
            assert read.status_code == 200
            patched = await client.patch(
                f"/api/v1/residents/{target}", json={"notes": f"第 {served} 次"}, headers=headers
            )
            assert patched.status_code in (200, 409)
            made = await create(client, headers, id_number=id_number(), phone="13900000000")
            phones[made["id"]] = "13900000000"
            served += 1
        done = await task
        assert done.status.value == "done"
        assert set(await Resident.all().values_list("key_id", flat=True)) == {"k-new"}
        assert set(await FormSubmission.all().values_list("key_id", flat=True)) == {"k-new"}
        # Readable with the new key alone: the old one can leave the ring.
        only_new = KeyRing(keys=[new_ring.keys[0]], index_key=old.ring.index_key)
        ctx.provide(RESIDENT_SETTINGS, replace(old, ring=only_new))
        for public_id, phone in phones.items():
            shown = await client.post(
                f"/api/v1/residents/{public_id}/reveal",
                json={"field": "phone", "reason": "轮换后核对"},
                headers=headers,
            )
            assert shown.json()["value"] == phone
        bureau = await headers_for(client, Role.BUREAU_ADMIN)
        status = await client.get("/api/v1/residents/key-rotations/latest", headers=bureau)
        assert status.json()["status"] == "done" and status.json()["percent"] == 100
    finally:
        ctx.provide(RESIDENT_SETTINGS, old)


async def test_the_rotate_keys_command_reports_progress(client, ctx, settings) -> None:
    headers = await worker(client)
    made = [await create(client, headers, id_number=id_number()) for _ in range(5)]
    before = ctx.get(RESIDENT_SETTINGS)
    new_kid = add_development_key(settings)  # the development ring, as `new-dev-key` does
    ctx.provide(RESIDENT_SETTINGS, replace(before, ring=load_key_ring(settings, env={})))
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("SMARTCIRCLE_RESIDENT")},
        "SMARTCIRCLE_VAR_DIR": str(settings.var_dir),
        "SMARTCIRCLE_PROFILE": settings.profile,
        "DATABASE_URL": settings.database_url,
        "REDIS_URL": settings.redis_url,
        "ELASTICSEARCH_URL": settings.elasticsearch_url,
    }
    result = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "residents", "rotate-keys", "--batch", "2"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert f"to key {new_kid}" in result.stdout and "done, 5/5 rows (100%)" in result.stdout
    assert set(await Resident.all().values_list("key_id", flat=True)) == {new_kid}
    status = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "residents", "rotate-keys", "--status"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert "rows under an old key: 0" in status.stdout
    for resident in made:
        assert (
            await client.get(f"/api/v1/residents/{resident['id']}", headers=headers)
        ).status_code == 200
