"""The citizen's pages (phone-first): identify, claim, show the QR code."""
from __future__ import annotations

from functools import wraps

from flask import Blueprint, Response, abort, current_app, flash, redirect, render_template, request, session, url_for

from voucher.accounts.forms import ActionForm
from voucher.campaigns.models import Release
from voucher.core.db import db
from voucher.core.errors import DomainError
from voucher.core.permissions import Access, public
from voucher.ops import limits
from voucher.vouchers import citizens, codes, lottery, qr, services
from voucher.vouchers.forms import CodeForm, PhoneForm
from voucher.vouchers.models import Citizen, Voucher
from voucher.web import refused, unit_of_work

bp = Blueprint("vouchers", __name__, url_prefix="/c")


def current_citizen() -> Citizen | None:
    citizen_id = session.get("citizen_id")
    return db.session.get(Citizen, citizen_id) if citizen_id else None


def signed_in_citizen() -> Citizen:
    """The citizen, in a view behind @citizen_required."""
    citizen = current_citizen()
    assert citizen is not None  # @citizen_required sent everyone else to sign in
    return citizen


def citizen_required(view):
    @wraps(view)
    def wrapper(*args, **kwargs):
        if current_citizen() is None:
            flash("请先用手机号验证身份", "warning")
            return redirect(url_for("vouchers.login"))
        return view(*args, **kwargs)

    wrapper.access = Access("citizen")  # type: ignore[attr-defined]
    return wrapper


@bp.get("/")
@public
def home():
    releases = services.open_releases()
    ids = [r.id for r in releases]
    citizen = current_citizen()
    return render_template(
        "vouchers/home.html", releases=releases, left=services.remaining(ids), citizen=citizen,
        entries=services.lottery_entry_counts(ids),
        my_entries=services.lottery_entries_of(citizen.id, ids) if citizen else {},
        action_form=ActionForm(),
    )


@bp.route("/login", methods=["GET", "POST"])
@public
@limits.citizen_login
def login():
    """Two steps on one page: the phone number, then the one-time code sent to it."""
    phone_form = PhoneForm(prefix="p")
    code_form = CodeForm(prefix="c")
    if request.method == "POST" and "c-code" in request.form:
        return _verify_code(code_form)
    if phone_form.validate_on_submit():
        try:
            with unit_of_work():
                one_time = citizens.request_code(phone_form.phone.data)
        except DomainError as error:
            flash(error.message, "error")
            return render_template("vouchers/login.html", phone_form=phone_form), error.status
        code_form.phone.data = citizens.normalise_phone(phone_form.phone.data)
        dev_code = one_time if current_app.config["OTP_DEV_DISPLAY"] else None
        return render_template("vouchers/login.html", code_form=code_form, dev_code=dev_code)
    status = 422 if request.method == "POST" else 200
    return render_template("vouchers/login.html", phone_form=phone_form), status


def _verify_code(code_form: CodeForm):
    if not code_form.validate_on_submit():
        return render_template("vouchers/login.html", code_form=code_form), 422
    try:
        citizen = citizens.verify_code(code_form.phone.data or "", code_form.code.data or "")
    except DomainError as error:
        db.session.commit()  # keep the attempt count, so guessing stays limited
        flash(error.message, "error")
        return render_template("vouchers/login.html", code_form=code_form), error.status
    db.session.commit()
    session["citizen_id"] = citizen.id
    flash("验证成功", "success")
    return redirect(url_for("vouchers.home"))


@bp.post("/logout")
@public
def logout():
    if ActionForm().validate_on_submit():
        session.pop("citizen_id", None)
    return redirect(url_for("vouchers.home"))


@bp.post("/releases/<int:release_id>/claim")
@limits.claim_page
@citizen_required
def claim(release_id: int):
    if not ActionForm().validate_on_submit():
        abort(400)
    try:
        with unit_of_work():
            voucher = services.claim(release_id, signed_in_citizen())
    except DomainError as error:
        return refused(error, "vouchers.home")
    flash(f"领取成功！券码 {codes.display(voucher.code)}", "success")
    return redirect(url_for("vouchers.mine"))


@bp.post("/releases/<int:release_id>/enter")
@limits.claim_page
@citizen_required
def enter_lottery(release_id: int):
    if not ActionForm().validate_on_submit():
        abort(400)
    try:
        with unit_of_work():
            entry = lottery.enter(release_id, signed_in_citizen())
    except DomainError as error:
        return refused(error, "vouchers.home")
    flash(f"报名成功，您的报名编号为 #{entry.id}，开奖后中签的券会出现在“我的消费券”", "success")
    return redirect(url_for("vouchers.home"))


@bp.get("/releases/<int:release_id>/lottery")
@public
def lottery_page(release_id: int):
    """Public: the commitment, the entry numbers and, after the draw, the seed and the winners."""
    release = db.session.get(Release, release_id)
    if release is None or release.mode != "lottery":
        abort(404)
    entries = services.lottery_entry_numbers(release_id)
    winners = services.lottery_entry_numbers(release_id, won=True) if release.drawn_at else []
    # a lottery release has its seed from the start (published only after the draw)
    passed_over = (services.lottery_passed_over(release.seed, entries, winners)
                   if release.drawn_at and release.seed is not None else [])
    return render_template("vouchers/lottery.html", release=release, entries=entries, winners=winners,
                           passed_over=passed_over)


@bp.get("/vouchers")
@citizen_required
def mine():
    citizen = current_citizen()
    return render_template(
        "vouchers/mine.html", vouchers=services.citizen_vouchers(citizen.id), action_form=ActionForm(),
    )


@bp.get("/vouchers/<int:voucher_id>/qr.png")
@citizen_required
def qr_png(voucher_id: int):
    voucher = db.session.get(Voucher, voucher_id)
    # A citizen sees only their own vouchers; anyone else's is "not found", not "forbidden".
    if voucher is None or voucher.citizen_id != session.get("citizen_id"):
        abort(404)
    response = Response(qr.png(services.qr_token(voucher)), mimetype="image/png")
    response.headers["Cache-Control"] = "private, no-store"
    return response
