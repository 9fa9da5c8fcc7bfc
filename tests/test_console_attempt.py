"""The console's one shape for a form: build the API's model, call the service, show refusals."""

from __future__ import annotations

import pytest
from pydantic import BaseModel, Field

from admin_console.forms import attempt
from backend.errors import Conflict, NotFound, ValidationFailed


class Body(BaseModel):
    name: str = Field(min_length=2)


async def test_attempt_answers_or_shows_errors_next_to_the_fields() -> None:
    calls: list[Body] = []

    async def ok(body: Body) -> str:
        calls.append(body)
        return "done"

    assert await attempt(Body, {"name": "张三"}, ok) == ("done", {})
    result, errors = await attempt(Body, {"name": "张"}, ok)
    assert result is None and set(errors) == {"name"} and len(calls) == 1  # never called

    async def refused(body: Body) -> str:
        raise ValidationFailed(fields={"name": "已登记"})

    assert await attempt(Body, {"name": "张三"}, refused) == (None, {"name": "已登记"})

    async def conflict(body: Body) -> str:
        raise Conflict("该地址已有户", code="household_exists")

    assert await attempt(Body, {"name": "张三"}, conflict) == (None, {"_": "该地址已有户"})
    with pytest.raises(Conflict):  # only the kind of refusal asked for becomes field errors
        await attempt(Body, {"name": "张三"}, conflict, refusals=ValidationFailed)

    async def missing(body: Body) -> str:
        raise NotFound("居民不存在")

    with pytest.raises(NotFound):  # a missing object stays a 404 page
        await attempt(Body, {"name": "张三"}, missing)
