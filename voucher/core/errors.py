"""Typed domain errors. Each carries a stable code, a Chinese message and the HTTP status it maps to."""
from __future__ import annotations


class DomainError(Exception):
    code = "domain_error"
    status = 422
    default_message = "操作未能完成"

    def __init__(self, message: str | None = None):
        self.message = message or self.default_message
        super().__init__(self.message)


class InvalidInput(DomainError):
    code = "invalid_input"
    default_message = "输入有误"


class RefusedFile(InvalidInput):
    """An imported file refused whole (nothing was written). `problems` lists what is wrong, one
    Chinese message each, most naming the row ("第 5 行：..."): at most SHOWN of them, then a line
    counting the rest; `total` counts them all. A subclass gives its code and its summary."""

    code = "file_refused"
    SHOWN = 200

    def __init__(self, problems: list[str], message: str | None = None):
        self.total = len(problems)
        hidden = self.total - self.SHOWN
        self.problems = problems[:self.SHOWN] + ([f"另有 {hidden} 处问题未列出"] if hidden > 0 else [])
        super().__init__(message or self.summary())

    def summary(self) -> str:
        return f"文件有 {self.total} 处问题，未导入任何数据：" + "；".join(self.problems[:5])


class InvalidAmount(InvalidInput):
    code = "invalid_amount"
    default_message = "金额格式不正确"


class NotFound(DomainError):
    code = "not_found"
    status = 404
    default_message = "找不到该记录"


class Forbidden(DomainError):
    code = "forbidden"
    status = 403
    default_message = "您没有执行此操作的权限"


class InvalidTransition(DomainError):
    code = "invalid_transition"
    status = 409
    default_message = "当前状态下不能执行此操作"


class ConcurrentChange(InvalidTransition):
    """Another person's change to the same records won (a deadlock, a serialization failure or a
    unique key taken at the same moment), after one retry: nothing of this request was saved."""

    code = "concurrent_change"
    default_message = "有其他人同时在处理同一记录，本次操作未生效，请刷新页面查看最新状态后再试"


class MakerCheckerViolation(DomainError):
    code = "maker_cannot_approve"
    status = 403
    default_message = "不能审批自己提交的事项，请由其他审批人处理"


class BudgetExhausted(DomainError):
    code = "budget_exhausted"
    status = 409
    default_message = "可用预算不足"


class PlanOverrideRequired(DomainError):
    """Approving a campaign would take its measure past the money the policy planned for it (or the
    policy plans none): refused unless the approver gives a reason, which is kept with the campaign."""

    code = "plan_override_required"
    status = 409
    default_message = "批准后将超出该措施的计划资金，请填写超计划批准理由"


class UnbalancedPosting(DomainError):
    code = "unbalanced_posting"
    status = 500
    default_message = "记账分录借贷不平衡"


class AccountWouldGoNegative(DomainError):
    code = "account_negative"
    status = 409
    default_message = "账户余额不足"


# Vouchers and redemption -------------------------------------------------------------------------


class InvalidToken(DomainError):
    code = "invalid_token"
    default_message = "券码无效：二维码或券码被篡改、伪造或无法识别"


class VoucherNotFound(DomainError):
    code = "voucher_not_found"
    status = 404
    default_message = "找不到该消费券，请核对券码"


class VoucherAlreadyRedeemed(DomainError):
    code = "voucher_already_redeemed"
    status = 409
    default_message = "该券已核销，不能重复使用"


class VoucherNotClaimed(DomainError):
    code = "voucher_not_claimed"
    status = 409
    default_message = "该券尚未被领取，不能核销"


class VoucherExpired(DomainError):
    code = "voucher_expired"
    status = 409
    default_message = "该券已过期"


class VoucherNotYetValid(DomainError):
    code = "voucher_not_yet_valid"
    status = 409
    default_message = "该券尚未到使用日期"


class ThresholdNotMet(DomainError):
    code = "threshold_not_met"
    default_message = "订单金额未达到使用门槛"


class MerchantNotEligible(DomainError):
    code = "merchant_not_eligible"
    status = 403
    default_message = "本商户不在该券的适用范围内"


class OutsideUsableHours(DomainError):
    code = "outside_usable_hours"
    status = 409
    default_message = "当前时段不能使用该券"


class CampaignNotActive(DomainError):
    code = "campaign_not_active"
    status = 409
    default_message = "该活动当前未在进行中"


class ReversalWindowClosed(DomainError):
    code = "reversal_window_closed"
    status = 409
    default_message = "已超过撤销时限"


class IdempotencyConflict(DomainError):
    code = "idempotency_conflict"
    status = 409
    default_message = "同一请求编号已用于不同的核销内容"


# Claims ------------------------------------------------------------------------------------------


class ReleaseNotOpen(DomainError):
    code = "release_not_open"
    status = 409
    default_message = "该场次未开放领取"


class SoldOut(DomainError):
    code = "sold_out"
    status = 409
    default_message = "本场次消费券已领完"


class Queued(DomainError):
    """A flash crowd's waiting room (vouchers/admission.py): the release admits claims at a set rate, in
    order of arrival; this one's turn comes in `retry_after` seconds. Not refused: asked to come back."""

    code = "queued"
    status = 429
    default_message = "排队中，请稍后再试"

    def __init__(self, position: int, retry_after: int):
        super().__init__(f"排队中：您前面约有 {position:,} 人，预计 {retry_after} 秒后轮到您。"
                         "轮到时请再点一次“立即领取”，您的排队位置会保留。")
        self.position, self.retry_after = position, retry_after


class ClaimLimitReached(DomainError):
    code = "claim_limit_reached"
    status = 409
    default_message = "您已达到本场次的领取上限"


class InvalidOneTimeCode(DomainError):
    code = "invalid_otp"
    default_message = "验证码错误或已过期"
