"""Password sign-in attempts: counted before the password is checked, in three scopes.

An attempt is first *counted* (an atomic increment in the key-value store), then decided: the
increment's result says whether this attempt is within the limit, so 30 concurrent guesses
cannot all pass a check that none of them has counted yet. Only then is the password verified.
A successful sign-in gives its attempt back; a failed one keeps it; a refused one (429) gives
it back too, since no password was tried.

Scopes (each with its own limit; the tightest one that is exceeded answers 429):

* ``pair`` — one account from one address (``SMARTCIRCLE_LOGIN_MAX_FAILURES``, default 5): the
  guesser is stopped, and the account's owner elsewhere is not locked out by them. A success
  from that address resets it.
* ``account`` — one account from anywhere (``SMARTCIRCLE_LOGIN_ACCOUNT_MAX_FAILURES``,
  default 20): guessing spread over many addresses.
* ``address`` — one address, any account (``SMARTCIRCLE_LOGIN_ADDRESS_MAX_FAILURES``, default
  100): credential stuffing. High, because a school, an office or a carrier's NAT puts many
  people behind one address; it no longer locks every account behind it at the first few typos.
  IPv6 addresses count per /64 (what one subscriber gets).

Windows are sliding (the usual two-bucket estimate: this window's count plus the previous one's
weighted by how much of it still overlaps), ``SMARTCIRCLE_LOGIN_LOCKOUT_SECONDS`` long, on the
app clock: moving the clock moves the windows (tests), and a lock lasts until the estimate drops
below the limit, which ``Retry-After`` tells. Keys hold digests, never a clear address or name.
"""

from __future__ import annotations

import ipaddress
import math
from dataclasses import dataclass

from backend.context import AppContext
from backend.errors import RateLimited
from backend.security import digest

PREFIX = "login-fail"


def address_scope(address: str) -> str:
    """The address as counted: IPv4 as is, IPv6 by its /64."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if ip.version == 6:
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)


@dataclass(frozen=True)
class _Scope:
    name: str
    ident: str
    limit: int


@dataclass(frozen=True)
class _Counted:
    scope: _Scope
    key: str  # this window's counter
    count: int  # this window's count, this attempt included
    previous: int  # the previous window's count


class SignInAttempts:
    """The attempts of one sign-in request (``reserve`` → verify → ``succeeded``/nothing)."""

    def __init__(self, ctx: AppContext, *, username: str, address: str) -> None:
        settings = ctx.settings
        account = username.strip().lower()
        where = address_scope(address)
        self.ctx = ctx
        self.window = float(settings.login_lockout_seconds)
        self.scopes = (
            _Scope("pair", digest(f"{account}\n{where}"), settings.login_max_failures),
            _Scope("account", digest(account), settings.login_account_max_failures),
            _Scope("address", digest(where), settings.login_address_max_failures),
        )
        self._counted: list[_Counted] = []

    def _key(self, scope: _Scope, index: int) -> str:
        return f"{PREFIX}:{scope.name}:{scope.ident}:{index}"

    async def _give_back(self, counted: _Counted) -> None:
        # With an expiry in case the counter expired meanwhile (never leave a key without one).
        await self.ctx.kv.incr(counted.key, -1, ttl=self._keep())

    def _keep(self) -> float:
        return 2 * self.window + 60  # the next window still weighs this one

    async def reserve(self) -> None:
        """Count this attempt in every scope; 429 ``login_locked`` if one is over its limit.

        Scope by scope, narrowest first, stopping at the first one over its limit: an attempt
        refused for one account-and-address never counts, even for a moment, against the
        account or the address, so a burst of guesses from one place cannot crowd out the
        account's owner elsewhere (nor other accounts behind that address).
        """
        kv = self.ctx.kv
        now = self.ctx.clock.time()
        index = math.floor(now / self.window)
        overlap = 1 - (now - index * self.window) / self.window
        for scope in self.scopes:
            key = self._key(scope, index)
            count = await kv.incr(key, ttl=self._keep())
            previous = max(0, await kv.get_int(self._key(scope, index - 1)))
            counted = _Counted(scope, key, count, previous)
            self._counted.append(counted)
            if count + previous * overlap > scope.limit:
                wait = self._wait(counted, now, index)
                for taken in self._counted:
                    await self._give_back(taken)
                self._counted.clear()
                raise RateLimited(wait, "登录失败次数过多，请稍后再试", code="login_locked")

    def _wait(self, counted: _Counted, now: float, index: int) -> float:
        """Seconds until one more attempt in this scope would be within the limit."""
        limit, window = counted.scope.limit, self.window
        before = counted.count - 1  # this window's attempts before this one
        start = index * window
        if before + 1 <= limit and counted.previous > 0:
            # Within this window, once enough of the previous one has slid out.
            share = 1 - (limit - before - 1) / counted.previous
            return max(start + share * window - now, 0.0)
        if before <= 0:
            return max(start + window - now, 0.0)
        # In the next window, once enough of this one has slid out.
        share = 1 - (limit - 1) / before
        return max(start + window + max(share, 0.0) * window - now, 0.0)

    async def succeeded(self) -> None:
        """The password was right: give the attempt back, reset the account-from-address scope."""
        kv = self.ctx.kv
        for counted in self._counted:
            if counted.scope.name == "pair":
                index = int(counted.key.rsplit(":", 1)[1])
                await kv.delete(counted.key, self._key(counted.scope, index - 1))
            else:
                await self._give_back(counted)
        self._counted.clear()
