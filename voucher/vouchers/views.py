"""The citizen's pages (phone-first, 连云港消费券): identify, claim, the list of one's vouchers, one
voucher's QR code, its uses and the stores that take it, sign-out, and the large-text mode (适老化)."""
from __future__ import annotations

from datetime import timedelta
from functools import wraps

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    flash,
    has_request_context,
    redirect,
    render_template,
    request,
    session,
    url_for,
)

from voucher.accounts.forms import ActionForm
from voucher.campaigns.models import Release
from voucher.core.db import db
from voucher.core.errors import DomainError, InvalidInput, Queued
from voucher.core.masking import mask_phone
from voucher.core.paging import page_number
from voucher.core.permissions import Access, public
from voucher.ops import limits
from voucher.vouchers import batches, citizens, codes, lottery, qr, services, wallet
from voucher.vouchers.forms import CodeForm, PhoneForm
from voucher.vouchers.models import Citizen
from voucher.web import back_to, refused, unit_of_work

bp = Blueprint("vouchers", __name__, url_prefix="/c")

#: the name citizens know the service by, in the header and the title of every /c/ page (the back
#: office keeps 消费券与补贴活动管理系统)
SITE_NAME = "连云港消费券"
#: the large-text mode (适老化): a cookie of its own, not the session, so it outlives a sign-out and
#: a change of number on a shared family phone
TEXT_SIZE_COOKIE = "c_text"
TEXT_SIZES = {"large": "大字模式", "normal": "标准字号"}


def is_citizen_page() -> bool:
    return has_request_context() and (request.path == bp.url_prefix or request.path.startswith(f"{bp.url_prefix}/"))


def large_text() -> bool:
    return request.cookies.get(TEXT_SIZE_COOKIE) == "large"


@bp.app_context_processor
def citizen_page_context() -> dict:
    """The citizen's header on every /c/ page, an error page under /c/ included (base.html)."""
    if not is_citizen_page():
        return {}
    return {"citizen_page": True, "site_name": SITE_NAME, "citizen_signed_in": "citizen_id" in session,
            "large_text": large_text()}


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
    wait = request.args.get("wait", "")
    return render_template(
        "vouchers/home.html", releases=releases, left=services.remaining(ids), citizen=citizen,
        refresh_after=int(wait) if wait.isascii() and wait.isdigit() and 0 < int(wait) <= 600 else None,
        batch_opens={r.id: batches.opens_for(r.opens_at, citizen.identity_hash, r.batches, r.batch_minutes)
                     for r in releases if citizen and r.batches > 1},
        entries=services.lottery_entry_counts(ids),
        my_entries=services.lottery_entries_of(citizen.id, ids) if citizen else {},
        held=services.held_of(citizen.id, ids) if citizen else {}, action_form=ActionForm(),
    )


@bp.route("/login", methods=["GET", "POST"])
@public
@limits.citizen_login
def login():
    """Two steps on one page: the phone number, then the one-time code sent to it.

    重新获取验证码 posts the number again to this same view, so a resend is counted with every other
    POST here by the per-address limit (limits.citizen_login counts per view) and by the per-number
    limit of citizens.request_code, and the new code replaces the old one (citizens.py)."""
    phone_form = PhoneForm(prefix="p")
    code_form = CodeForm(prefix="c")
    if request.method == "POST" and "c-code" in request.form:
        return _verify_code(code_form)
    if phone_form.validate_on_submit():
        resend = bool(phone_form.resend.data)
        try:
            with unit_of_work():
                one_time = citizens.request_code(phone_form.phone.data)
        except DomainError as error:
            flash(error.message, "error")
            if resend and not isinstance(error, InvalidInput):  # too many codes: the code step stays
                code_form.phone.data = citizens.normalise_phone(phone_form.phone.data)
                return _code_step(code_form, status=error.status)
            return render_template("vouchers/login.html", phone_form=phone_form), error.status
        if resend:
            flash("新的验证码已发送，之前的验证码已作废", "success")
        code_form.phone.data = citizens.normalise_phone(phone_form.phone.data)
        return _code_step(code_form, dev_code=one_time if current_app.config["OTP_DEV_DISPLAY"] else None)
    status = 422 if request.method == "POST" else 200
    return render_template("vouchers/login.html", phone_form=phone_form), status


def _code_step(code_form: CodeForm, *, status: int = 200, dev_code: str | None = None):
    """The second step: the code, and the number it went to (masked), to resend to or to change."""
    phone = code_form.phone.data or ""
    resend_form = PhoneForm(prefix="p", formdata=None, data={"phone": phone, "resend": "1"})
    return render_template("vouchers/login.html", code_form=code_form, resend_form=resend_form,
                           masked_phone=mask_phone(phone), dev_code=dev_code), status


def _verify_code(code_form: CodeForm):
    if not code_form.validate_on_submit():
        try:
            citizens.normalise_phone(code_form.phone.data)
        except InvalidInput as error:
            flash(error.message, "error")
            return render_template("vouchers/login.html", phone_form=PhoneForm(prefix="p", formdata=None)), 422
        return _code_step(code_form, status=422)
    try:
        citizen = citizens.verify_code(code_form.phone.data or "", code_form.code.data or "")
    except DomainError as error:
        db.session.commit()  # keep the attempt count, so guessing stays limited
        flash(error.message, "error")
        if isinstance(error, InvalidInput):  # the hidden number was altered: start again
            return render_template("vouchers/login.html", phone_form=PhoneForm(prefix="p", formdata=None)), error.status
        return _code_step(code_form, status=error.status)
    db.session.commit()
    session["citizen_id"] = citizen.id
    flash("验证成功", "success")
    return redirect(url_for("vouchers.home"))


@bp.post("/logout")
@public
def logout():
    """退出 (its CSRF token checked): also the first half of changing one's number."""
    if not ActionForm().validate_on_submit():
        abort(400)
    if session.pop("citizen_id", None) is not None:
        flash("已退出。如需更换手机号，请用新号码重新验证", "success")
    return redirect(back_to("vouchers.home", within=f"{bp.url_prefix}/"), 303)


@bp.post("/text-size")
@public
def text_size():
    """Switch the large-text mode (适老化) on or off, for this browser; back to the page it was switched on.
    voucher/static/text_size.js sends it in the background and answers itself (204), so a half-filled
    form stays as it is."""
    if not ActionForm().validate_on_submit():
        abort(400)
    size = request.form.get("size")
    if size not in TEXT_SIZES:
        raise InvalidInput("请选择“大字模式”或“标准字号”")
    if request.headers.get("X-Requested-With") == "fetch":
        response = current_app.response_class(status=204)
    else:
        flash(f"已切换为{TEXT_SIZES[size]}", "success")
        response = redirect(back_to("vouchers.home", within=f"{bp.url_prefix}/"), 303)
    if size == "large":
        response.set_cookie(TEXT_SIZE_COOKIE, "large", max_age=int(timedelta(days=365).total_seconds()),
                            path=bp.url_prefix, httponly=True, samesite="Lax",
                            secure=current_app.config["SESSION_COOKIE_SECURE"])
    else:
        response.delete_cookie(TEXT_SIZE_COOKIE, path=bp.url_prefix, httponly=True, samesite="Lax",
                               secure=current_app.config["SESSION_COOKIE_SECURE"])
    return response


@bp.post("/releases/<int:release_id>/claim")
@limits.claim_page
@citizen_required
def claim(release_id: int):
    if not ActionForm().validate_on_submit():
        abort(400)
    try:
        with unit_of_work():
            voucher = services.claim(release_id, signed_in_citizen())
    except Queued as queued:  # the waiting room: the page comes back when the turn is due
        flash(queued.message, "info")
        return redirect(url_for("vouchers.home", wait=queued.retry_after), 303)
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
    """The citizen's vouchers as cards, without QR codes: each opens its own page."""
    return render_template("vouchers/mine.html", cards=wallet.cards(signed_in_citizen().id), State=wallet.VoucherState)


# A citizen sees only their own vouchers: anyone else's is "not found" (wallet.own_voucher), not "forbidden".
@bp.get("/vouchers/<int:voucher_id>")
@citizen_required
def voucher_page(voucher_id: int):
    """One voucher: its QR code, large on white, while it can be used; its uses; where it can be used."""
    found = wallet.voucher_page(signed_in_citizen().id, voucher_id)
    response = current_app.make_response(render_template("vouchers/voucher.html", page=found, card=found.card))
    response.headers["Cache-Control"] = "private, no-store"
    return response


@bp.get("/vouchers/<int:voucher_id>/qr.png")
@citizen_required
def qr_png(voucher_id: int):
    voucher = wallet.qr_voucher(signed_in_citizen().id, voucher_id)  # none for a used or expired voucher
    response = Response(qr.png(services.qr_token(voucher)), mimetype="image/png")
    response.headers["Cache-Control"] = "private, no-store"
    return response


@bp.get("/vouchers/<int:voucher_id>/stores")
@citizen_required
def stores(voucher_id: int):
    """Where the voucher can be used: by district and category of its campaign's rules, searchable by name."""
    district = (request.args.get("district") or "").strip()
    category = (request.args.get("category") or "").strip()
    text = (request.args.get("q") or "").strip()
    found = wallet.stores(signed_in_citizen().id, voucher_id, district=district, category=category, text=text,
                          number=page_number(request.args.get("page")))
    if found.problem:
        flash(found.problem, "error")
        district = category = text = ""
    args = {k: v for k, v in (("district", district), ("category", category), ("q", text)) if v}
    return render_template("vouchers/stores.html", found=found, args=args, district=district, category=category,
                           q=text, max_search=wallet.MAX_SEARCH), 422 if found.problem else 200


@bp.get("/history")
@citizen_required
def history():
    """Every use of the citizen's vouchers: when (Beijing time), where, the order and the subsidy."""
    return render_template("vouchers/history.html",
                           page=wallet.history(signed_in_citizen().id, page_number(request.args.get("page"))))
