"""The product's scheduled jobs. Each is `run(now) -> summary`, works in the caller's transaction and
never commits (see voucher/jobs/registry.py); the services they call hold the business rules."""
from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, select

from voucher.analytics import panel
from voucher.analytics.daily import snapshot_day
from voucher.api import auth
from voucher.campaigns.models import Campaign, CampaignStatus, Release, ReleaseStatus
from voucher.core import audit_chain
from voucher.core.clock import to_local
from voucher.core.db import db, rowcount
from voucher.core.errors import DomainError
from voucher.counter import risk
from voucher.jobs.models import JobRun
from voucher.jobs.schedules import daily, every
from voucher.settlement import batches as settlement
from voucher.vouchers import admission, expiry
from voucher.vouchers.releases import open_release

logger = logging.getLogger(__name__)

#: succeeded runs are kept this long on the admin page, then pruned
RUN_HISTORY = timedelta(days=30)


def open_releases(now: datetime) -> dict[str, Any]:
    """Open the releases of active campaigns whose opening time has come. Each release opens in a
    savepoint: one that cannot open (budget exhausted) is reported and the others still open.
    The job is one transaction holding each campaign it opens a release of, so it takes them in the
    system's order, ascending campaign id (docs/concurrency.md): in opening-time order it deadlocked
    with a budget move holding two campaigns (found by the randomized money soak)."""
    due = db.session.execute(
        select(Release.id, Release.quantity)
        .join(Campaign, Campaign.id == Release.campaign_id)
        .where(Release.status == ReleaseStatus.SCHEDULED.value, Release.opens_at <= now,
               Campaign.status == CampaignStatus.ACTIVE.value)
        .order_by(Release.campaign_id, Release.opens_at, Release.id)
    ).all()
    from voucher.jobs import background  # it imports the runner, which imports this module

    opened: list[int] = []
    started: list[int] = []
    failed: dict[str, str] = {}
    for release_id, quantity in due:
        try:
            with db.session.begin_nested():
                if quantity < background.threshold():
                    open_release(release_id, actor=None, now=now)
                    opened.append(release_id)
                else:  # a big release only starts its background job here (jobs/background.py)
                    background.request_open(release_id, actor=None, now=now)
                    started.append(release_id)
        except background.AlreadyRunning:
            continue  # started by a page or an earlier minute; the job opens it
        except DomainError as error:
            failed[str(release_id)] = error.message
            logger.warning("release %s could not open: %s", release_id, error.code)
    return {"opened": opened, "started": started, "failed": failed} if started else {"opened": opened, "failed": failed}


def expire_vouchers(now: datetime) -> dict[str, Any]:
    expired = expiry.expire_vouchers(now)
    return {"expired": sum(expired.values()), "campaigns": len(expired)}


def prune_nonces(now: datetime) -> dict[str, Any]:
    return {"nonces": auth.prune_nonces()}


def prune_job_runs(now: datetime) -> dict[str, Any]:
    """Forget succeeded runs older than RUN_HISTORY (a minute job leaves 1,440 a day); failures stay."""
    result = db.session.execute(
        delete(JobRun).where(JobRun.status == "succeeded", JobRun.started_at < now - RUN_HISTORY)
    )
    return {"runs": rowcount(result) or 0}


def risk_scan(now: datetime) -> dict[str, Any]:
    """Scan the local day before the run's day."""
    day = to_local(now).date() - timedelta(days=1)
    return {"day": day.isoformat(), "flags": len(risk.scan(day))}


def daily_stats(now: datetime) -> dict[str, Any]:
    """Snapshot the local day before the run's day."""
    day = to_local(now).date() - timedelta(days=1)
    return {"day": day.isoformat(), "campaigns": snapshot_day(day)}


def build_settlement(now: datetime) -> dict[str, Any]:
    """Batch the day before the run's day (its reversal window closed at 00:30), after the risk scan,
    so a merchant flagged for that day is held."""
    day = min(to_local(now).date() - timedelta(days=1), settlement.latest_buildable_day(now))
    result = settlement.build_batches(day, now=now)
    return {"day": day.isoformat(), "batches": len(result.batches), "total_fen": result.total_fen,
            "held_merchants": sorted(result.held)}


def seal_audit(now: datetime) -> dict[str, Any]:
    """Chain the audit records written more than audit_chain.SEAL_AFTER ago."""
    link = audit_chain.seal(now)
    return {"sealed": link.entry_count if link else 0, "last_entry_id": link.last_entry_id if link else None}


def reconcile_admission(now: datetime) -> dict[str, Any]:
    return admission.reconcile()


def refresh_leverage(now: datetime) -> dict[str, Any]:
    """Pre-aggregate the leverage figures up to yesterday and rebuild the causal panel."""
    return panel.refresh_leverage()


#: (name, label, schedule, function): the product's jobs, registered on first use. Add a job here;
#: its name is stored in job_runs, so keep names stable. The nightly order matters: the risk scan
#: flags a day before settlement builds it.
JOBS = [
    ("open_releases", "开放到期发放场次", every(1), open_releases),
    ("reconcile_admission", "核对领券闸门（Redis）与数据库", every(1), reconcile_admission),
    ("expire_vouchers", "过期券失效并退回预算", daily(0, 30), expire_vouchers),
    ("daily_stats", "每日统计快照", daily(0, 45), daily_stats),
    ("risk_scan", "风险扫描", daily(1, 30), risk_scan),
    ("build_settlement", "生成结算批次", daily(2, 0), build_settlement),
    ("refresh_leverage", "杠杆率预聚合与因果面板", daily(2, 30), refresh_leverage),
    ("prune_nonces", "清理过期请求随机数", every(60), prune_nonces),
    ("seal_audit", "封存审计日志", every(5), seal_audit),
    ("prune_job_runs", "清理历史运行记录", daily(4, 0), prune_job_runs),
]
