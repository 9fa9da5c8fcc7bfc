"""Long operations (exports, the booklet PDF): started by a request, run in the background.

The request that starts one answers at once with a task id; the work runs as an asyncio task
(files are built in a worker thread by the service functions), reporting its step and percentage
in the key-value store, where any worker can read it; the page polls the task with htmx and
offers the file when it is done. The result (base64, kept 15 minutes) belongs to the user who
started it.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass

from backend.context import AppContext

log = logging.getLogger("smartcircle.console")
KEEP_SECONDS = 900
_RUNNING: set[asyncio.Task[None]] = set()


@dataclass
class TaskState:
    id: str
    owner: str
    label: str
    state: str = "running"  # running | done | failed
    percent: int = 0
    step: str = "排队中"
    filename: str = ""
    content_type: str = ""
    error: str = ""


Report = Callable[[int, str], Awaitable[None]]
Work = Callable[[Report], Awaitable[tuple[bytes, str, str] | None]]


def _key(task_id: str) -> str:
    return f"console:task:{task_id}"


async def _save(ctx: AppContext, state: TaskState) -> None:
    await ctx.kv.set(_key(state.id), json.dumps(asdict(state)), ttl=KEEP_SECONDS)


async def get(ctx: AppContext, task_id: str, owner: str) -> TaskState | None:
    """The task if it exists and belongs to this user."""
    if len(task_id) > 64:
        return None
    raw = await ctx.kv.get(_key(task_id))
    if raw is None:
        return None
    state = TaskState(**json.loads(raw))
    return state if state.owner == owner else None


async def result(ctx: AppContext, task_id: str) -> bytes | None:
    raw = await ctx.kv.get(_key(task_id) + ":file")
    return base64.b64decode(raw) if raw is not None else None


async def start(ctx: AppContext, *, owner: str, label: str, work: Work) -> TaskState:
    """Start ``work`` in the background; it reports (percent, step) as it goes."""
    state = TaskState(id=secrets.token_urlsafe(12), owner=owner, label=label)
    await _save(ctx, state)

    async def report(percent: int, step: str) -> None:
        state.percent, state.step = percent, step
        await _save(ctx, state)

    async def run() -> None:
        try:
            outcome = await work(report)
            state.state, state.percent = "done", 100
            if outcome is not None:  # a file to download; otherwise the last step says it all
                body, filename, content_type = outcome
                await ctx.kv.set(
                    _key(state.id) + ":file", base64.b64encode(body).decode(), ttl=KEEP_SECONDS
                )
                state.step, state.filename, state.content_type = "完成", filename, content_type
        except Exception as exc:  # reported to the user, logged with its traceback
            log.exception("console task failed", extra={"task": state.label})
            state.state, state.step = "failed", "失败"
            state.error = getattr(exc, "message", None) or "处理失败，请重试"
        await _save(ctx, state)

    task = asyncio.get_running_loop().create_task(run())
    _RUNNING.add(task)
    task.add_done_callback(_RUNNING.discard)
    return state
