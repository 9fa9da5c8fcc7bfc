"""Who speaks as whom: the audience a submission or a vote counts for.

* **Departments**: staff roles (street workers, curators, the bureau, judges).
* **Enterprises**: only a member of a *verified* vendor (``crowdsource/challenges``: ``Vendor``,
  ``VendorMember``, ``VendorStatus``). The company name shown is the vendor's registered name,
  never free text: a submission may omit ``company_name`` or repeat that name exactly. Anyone
  else asking to speak as an enterprise gets 403 ``not_vendor_member``; a member of a vendor that
  is pending or suspended gets 403 ``vendor_not_verified``; both name the field ``audience``.
  An Open311 client registered for an enterprise speaks for the verified vendor it names.
* **Residents**: everyone else.
"""

from __future__ import annotations

from backend.access import Principal
from backend.errors import Forbidden, Unprocessable
from backend.models import Role
from crowdsource.challenges.models import Vendor, VendorStatus
from crowdsource.challenges.service import membership_of
from crowdsource.models import Audience, Campaign

DEPARTMENT_ROLES = frozenset({Role.STREET_WORKER, Role.CURATOR, Role.BUREAU_ADMIN, Role.JUDGE})
ENTERPRISE_ROLES = frozenset({Role.VENDOR, Role.VENUE_OPERATOR})


def require_invited(campaign: Campaign, audience: Audience) -> None:
    """422 ``audience_not_invited`` unless the campaign collects from this audience."""
    if audience.value not in campaign.audiences:
        raise Unprocessable(
            "本次活动未面向该群体征集",
            code="audience_not_invited",
            fields={"audience": audience.value},
        )


def verified_vendor_name(vendor: Vendor | None, *, field: str = "audience") -> str:
    """The registered name of a verified vendor; 403 naming ``field`` for anything else."""
    if vendor is None:
        raise Forbidden(
            "只有认证企业的成员账号可以企业身份提交或投票",
            code="not_vendor_member",
            fields={field: "enterprise 须由认证企业的成员账号使用"},
        )
    if vendor.status != VendorStatus.VERIFIED:
        raise Forbidden(
            "所属企业未通过认证或已被暂停，不能以企业身份提交或投票",
            code="vendor_not_verified",
            fields={field: f"企业状态：{VendorStatus(vendor.status).value}"},
        )
    return vendor.name


async def enterprise_name(principal: Principal) -> str:
    """The registered name of the verified vendor this person is a member of (else 403)."""
    member = await membership_of(principal.user_id)
    return verified_vendor_name(member.vendor if member is not None else None)


async def submitter_voice(
    principal: Principal, campaign: Campaign, requested: Audience | None, company: str | None
) -> tuple[Audience, str | None]:
    """The audience of a submission and, for an enterprise, the vendor's registered name."""
    allowed: tuple[Audience, ...]
    if principal.role in DEPARTMENT_ROLES:
        allowed = (Audience.DEPARTMENT,)
    elif principal.role in ENTERPRISE_ROLES:
        allowed = (Audience.ENTERPRISE,)
    else:
        allowed = (Audience.RESIDENT, Audience.ENTERPRISE)
    audience = requested or allowed[0]
    if audience not in allowed:
        raise Unprocessable(
            "当前账号不能以该身份提交",
            code="audience_not_allowed",
            fields={"audience": "可选：" + ",".join(a.value for a in allowed)},
        )
    require_invited(campaign, audience)
    if audience is not Audience.ENTERPRISE:
        return audience, None
    name = await enterprise_name(principal)
    if company is not None and company.strip() != name:
        raise Unprocessable(
            "企业名称须为所属企业的登记名称",
            code="company_name_mismatch",
            fields={"company_name": f"须为“{name}”，或省略"},
        )
    return audience, name


async def voter_audience(principal: Principal, campaign: Campaign) -> Audience:
    """The audience a vote counts for, invited by the campaign; an enterprise vote needs a
    verified vendor membership."""
    audience = Audience.RESIDENT
    if principal.role in DEPARTMENT_ROLES:
        audience = Audience.DEPARTMENT
    elif principal.role in ENTERPRISE_ROLES:
        audience = Audience.ENTERPRISE
    require_invited(campaign, audience)
    if audience is Audience.ENTERPRISE:
        await enterprise_name(principal)
    return audience
