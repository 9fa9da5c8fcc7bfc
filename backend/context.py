"""The application context: every shared client and setting, typed, set once in ``create_app``.

Core clients are plain fields. What a feature provides to itself — its search backend, its
similarity backend, its own settings — is held in a typed :class:`Slot` that the feature declares
in its own package and fills from its manifest's start-up hook: ``backend`` cannot name a
feature's types without depending on the feature, and a slot keeps the type (``ctx.get(slot)`` is
a ``T`` for mypy) while the dependency still points from the feature to ``backend``. A slot is
filled once; reading an empty slot is a start-up bug and raises at once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Generic, TypeVar, cast

import httpx

from backend.auth.wechat import WeChatClient
from backend.clock import Clock
from backend.config import Settings
from backend.elastic import Elastic
from backend.kv import KeyValue
from backend.kv_redis import RedisKeyValue, create_kv
from backend.kv_resilience import ResilientKeyValue

T = TypeVar("T")


class Slot(Generic[T]):
    """A typed place in the app context that one feature fills at start-up."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"Slot({self.name!r})"


class SlotEmpty(LookupError):
    """A feature's component was read before the feature's start-up hook filled it."""


@dataclass(eq=False)
class AppContext:
    """The shared clients of one app (one per worker process)."""

    settings: Settings
    kv: KeyValue
    clock: Clock
    http: httpx.AsyncClient
    wechat: WeChatClient
    # The Elasticsearch client and its circuit breaker (services profile); None when the app
    # runs without Elasticsearch, which every feature that indexes treats as "use the database".
    elastic: Elastic | None = None
    _components: dict[Slot[object], object] = field(default_factory=dict, repr=False)

    def provide(self, slot: Slot[T], value: T) -> None:
        """Fill a feature's slot (at start-up)."""
        self._components[cast(Slot[object], slot)] = value

    def get(self, slot: Slot[T]) -> T:
        """The component a feature put in ``slot``."""
        try:
            return cast(T, self._components[cast(Slot[object], slot)])
        except KeyError:
            raise SlotEmpty(f"{slot.name} was not provided at start-up") from None

    async def close(self) -> None:
        """Close every client this context opened."""
        await self.http.aclose()
        if self.elastic is not None:
            await self.elastic.close()
        await self.kv.close()


def build_context(settings: Settings, *, clock: Clock | None = None) -> AppContext:
    """The context for these settings: the KV store, HTTP and WeChat clients, Elasticsearch.

    Redis is wrapped in :class:`~backend.kv_resilience.ResilientKeyValue`: when it is
    unreachable each kind of operation degrades as that module describes, and requests go on.
    """
    kv = create_kv(
        settings.redis_url, prefix=settings.kv_prefix, socket_timeout=settings.kv_timeout
    )
    if isinstance(kv, RedisKeyValue):
        kv = ResilientKeyValue(kv, retry_after=settings.kv_retry_seconds)
    clock = clock or Clock()
    http = httpx.AsyncClient(timeout=settings.wechat_timeout)
    wechat = WeChatClient(
        base_url=settings.wechat_base_url,
        appid=settings.wechat_appid,
        secret=settings.wechat_secret,
        http=http,
    )
    elastic = Elastic.from_settings(settings, clock) if settings.elasticsearch_url else None
    return AppContext(
        settings=settings, kv=kv, clock=clock, http=http, wechat=wechat, elastic=elastic
    )
