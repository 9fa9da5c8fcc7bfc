"""The unit of work: one transaction per use case, hooks only after a commit."""

from __future__ import annotations

import pytest
from sanic import Sanic

from backend.models import User
from backend.uow import after_commit, current_unit, unit_of_work


async def _users() -> set[str]:
    return set(await User.filter(username__startswith="uow-").values_list("username", flat=True))


async def test_hooks_run_after_commit_in_order(app: Sanic) -> None:
    seen: list[str] = []

    async def first() -> None:
        # The rows are visible (committed) when the hook runs.
        seen.append("first:" + ",".join(sorted(await _users())))

    async def second() -> None:
        seen.append("second")

    async with unit_of_work() as uow:
        await User.create(username="uow-a", role="curator")
        uow.after_commit(first)
        await after_commit(second)
        assert seen == []  # nothing runs before the commit
    assert seen == ["first:uow-a", "second"]
    assert current_unit() is None


async def test_rollback_discards_rows_and_hooks(app: Sanic) -> None:
    seen: list[str] = []

    async def hook() -> None:
        seen.append("ran")

    with pytest.raises(RuntimeError):
        async with unit_of_work() as uow:
            await User.create(username="uow-b", role="curator")
            uow.after_commit(hook)
            raise RuntimeError("boom")
    assert seen == []
    assert await _users() == set()


async def test_inner_unit_joins_outer(app: Sanic) -> None:
    seen: list[str] = []

    async def hook() -> None:
        seen.append("inner hook")

    with pytest.raises(RuntimeError):
        async with unit_of_work() as outer:
            async with unit_of_work() as inner:
                assert inner is outer
                await User.create(username="uow-c", role="curator")
                inner.after_commit(hook)
            assert seen == []  # the inner block's end is not a commit
            raise RuntimeError("outer fails")
    assert seen == []
    assert await _users() == set()


async def test_failing_hook_does_not_undo_the_commit(app: Sanic) -> None:
    seen: list[str] = []

    async def broken() -> None:
        raise ValueError("kv down")

    async def later() -> None:
        seen.append("later")

    async with unit_of_work() as uow:
        await User.create(username="uow-d", role="curator")
        uow.after_commit(broken)
        uow.after_commit(later)
    assert await _users() == {"uow-d"}
    assert seen == ["later"]


async def test_after_commit_outside_a_unit_runs_now(app: Sanic) -> None:
    seen: list[str] = []

    async def hook() -> None:
        seen.append("now")

    await after_commit(hook)
    assert seen == ["now"]
