"""WeChat mini-program sign-in: ``jscode2session`` exchanges a ``wx.login`` code for the openid."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import httpx

from backend.errors import AppError, BadRequest, Forbidden, RateLimited, ServiceUnavailable

log = logging.getLogger("smartcircle.wechat")


@dataclass(frozen=True)
class WeChatIdentity:
    openid: str
    unionid: str | None


class WeChatClient:
    """A thin client of WeChat's ``sns/jscode2session`` API (base URL configurable)."""

    def __init__(self, *, base_url: str, appid: str, secret: str, http: httpx.AsyncClient) -> None:
        self._base_url = base_url.rstrip("/")
        self._appid = appid
        self._secret = secret
        self._http = http

    async def code_to_session(self, code: str) -> WeChatIdentity:
        """Exchange a login code; WeChat's error answers become clear API errors."""
        params = {
            "appid": self._appid,
            "secret": self._secret,
            "js_code": code,
            "grant_type": "authorization_code",
        }
        try:
            response = await self._http.get(f"{self._base_url}/sns/jscode2session", params=params)
        except httpx.HTTPError as exc:
            log.warning("wechat unreachable: %s", type(exc).__name__)
            raise ServiceUnavailable(
                "微信登录服务暂不可用，请稍后再试", code="wechat_unavailable"
            ) from None
        if response.status_code >= 500:
            raise ServiceUnavailable("微信登录服务暂不可用，请稍后再试", code="wechat_unavailable")
        bad_answer = ServiceUnavailable("微信登录服务应答异常", code="wechat_bad_answer")
        try:
            data = response.json()
            errcode = int(data.get("errcode") or 0)
        except (ValueError, TypeError, AttributeError):
            log.warning(
                "wechat answered something unexpected", extra={"status": response.status_code}
            )
            raise bad_answer from None
        if errcode:
            log.info("wechat refused code", extra={"errcode": errcode})
            raise _error_for(errcode)
        openid = data.get("openid")
        if not openid or not isinstance(openid, str):
            raise bad_answer
        return WeChatIdentity(openid=str(openid), unionid=data.get("unionid") or None)


def _error_for(errcode: int) -> AppError:
    if errcode in (40029, 40163):
        return BadRequest(
            "微信登录凭证无效或已使用，请重新登录",
            code="wechat_code_invalid",
            fields={"code": "invalid or already used"},
        )
    if errcode == 45011:
        return RateLimited(60, "微信登录过于频繁，请稍后再试", code="wechat_rate_limited")
    if errcode == 40226:
        return Forbidden("微信账号存在风险，暂不能登录", code="wechat_user_blocked")
    if errcode == -1:
        return ServiceUnavailable("微信系统繁忙，请稍后再试", code="wechat_busy")
    return ServiceUnavailable("微信登录失败，请稍后再试", code="wechat_error")
