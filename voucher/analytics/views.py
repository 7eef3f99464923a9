from __future__ import annotations

from flask import Blueprint, render_template
from sqlalchemy import select

from voucher.analytics.services import campaign_figures
from voucher.campaigns.models import Campaign, CampaignStatus
from voucher.core.db import db
from voucher.core.permissions import OVERSIGHT, roles_required

bp = Blueprint("analytics", __name__)


@bp.get("/dashboard")
@roles_required(*OVERSIGHT)
def dashboard():
    campaigns = db.session.scalars(
        select(Campaign).where(Campaign.status != CampaignStatus.DRAFT.value).order_by(Campaign.id)
    ).all()
    return render_template("analytics/dashboard.html", figures=campaign_figures(list(campaigns)))
