from __future__ import annotations

from urllib.parse import urlsplit

from flask import Blueprint, abort, current_app, flash, make_response, redirect, render_template, request, url_for
from flask_login import current_user

from voucher.accounts import pending, services, sessions, two_factor
from voucher.accounts.forms import ActionForm, ChangePasswordForm, LoginForm, TwoFactorCodeForm
from voucher.core import audit
from voucher.core.clock import utcnow
from voucher.core.db import db
from voucher.core.errors import DomainError
from voucher.core.permissions import Role, public, roles_required, signed_in_required
from voucher.ops import limits
from voucher.web import refused, unit_of_work

bp = Blueprint("accounts", __name__)

HOME_BY_ROLE = {
    Role.BUREAU_MAKER.value: "campaigns.index",
    Role.BUREAU_APPROVER.value: "campaigns.approvals",
    Role.ADMIN.value: "analytics.dashboard",
    Role.FINANCE.value: "analytics.dashboard",
    Role.AUDITOR.value: "analytics.dashboard",
    Role.CASHIER.value: "merchants.counter",
    Role.MERCHANT_MANAGER.value: "merchants.redemptions",
}
USERS_SHOWN = 200


@bp.get("/")
@public
def home():
    if not current_user.is_authenticated:
        return render_template("home.html")
    return redirect(url_for(HOME_BY_ROLE[current_user.role]))


@bp.route("/login", methods=["GET", "POST"])
@public
@limits.login
def login():
    form = LoginForm()
    if form.validate_on_submit():
        try:
            attempt = services.start_sign_in(form.username.data)
            db.session.commit()  # the attempt counts before its password is checked (services.py)
            user = services.finish_sign_in(attempt, form.password.data)
            if two_factor.enabled(user):
                # Not signed in yet: the password held, the code is asked next (within PENDING_TTL).
                db.session.commit()  # the count of attempts, cleared by the right password
                pending.start(user.id, _next_target())
                return redirect(url_for("accounts.login_two_factor"))
            token = sessions.start(user, replacing=sessions.current_id())
        except (services.LoginFailed, services.AccountLocked):
            # A refused sign-in changes only the failure count and the lock, which must persist. A locked
            # account gets the same answer as a wrong password or an unknown name: "locked" would tell
            # whoever guesses that the username exists (the lock itself is in the audit log for staff).
            db.session.commit()
            flash(_refused_message(), "error")
            return render_template("accounts/login.html", form=form), 401
        except DomainError as error:
            db.session.commit()
            flash(error.message, "error")
            return render_template("accounts/login.html", form=form), error.status
        return _finish(user, token, _next_target())
    status = 422 if form.is_submitted() else 200
    return render_template("accounts/login.html", form=form), status


def _next_target() -> str:
    target = request.args.get("next", "")
    return target if _is_local(target) else url_for("accounts.home")


@bp.route("/login/two-factor", methods=["GET", "POST"])
@public
@limits.login
def login_two_factor():
    """两步验证, the second step of a sign-in: a code from the authenticator app, or a recovery code."""
    waiting = pending.current()
    if waiting is None:
        flash("请先输入用户名和密码；验证码须在 5 分钟内输入", "warning")
        return redirect(url_for("accounts.login"))
    form = TwoFactorCodeForm()
    if form.validate_on_submit():
        try:
            attempt = services.start_second_factor(waiting.user_id)
            db.session.commit()  # the attempt counts before its code is checked, like a password
            user = services.finish_second_factor(attempt, form.code.data)
            token = sessions.start(user, replacing=sessions.current_id())
        except (services.LoginFailed, services.AccountLocked) as error:
            db.session.commit()
            pending.forget()
            flash(error.message if isinstance(error, services.AccountLocked) else _refused_message(), "error")
            return redirect(url_for("accounts.login"))
        except DomainError as error:
            db.session.commit()
            flash(error.message, "error")
            return render_template("accounts/login_two_factor.html", form=form), 401
        pending.forget()
        return _finish(user, token, waiting.target)
    status = 422 if form.is_submitted() else 200
    return render_template("accounts/login_two_factor.html", form=form), status


def _finish(user, token: str, target: str):
    """Signed in: the session opens; a temporary password is replaced before anything else."""
    temporary = user.is_password_temporary
    db.session.commit()
    sessions.remember(user, token)
    return redirect(url_for("accounts.change_password") if temporary else target)


def _refused_message() -> str:
    config = current_app.config
    return (f"用户名或密码错误。连续输错 {config['LOGIN_MAX_FAILURES']} 次后账户将临时锁定 "
            f"{config['LOGIN_LOCKOUT_MINUTES']} 分钟，如已锁定请稍后再试或联系管理员")


def _is_local(target: str) -> bool:
    parts = urlsplit(target)
    return bool(target) and not parts.scheme and not parts.netloc and target.startswith("/")


@bp.post("/logout")
@signed_in_required
def logout():
    if ActionForm().validate_on_submit():
        session_id = sessions.current_id()
        with unit_of_work():
            if session_id is not None:
                sessions.end(session_id, "sign_out")
            audit.record("user.logout", current_user, actor=current_user)
        sessions.forget()
        flash("已退出登录", "info")
    return redirect(url_for("accounts.login"))


@bp.route("/account/password", methods=["GET", "POST"])
@signed_in_required
def change_password():
    """修改密码, for every signed-in staff user; the only page open to one with a temporary password."""
    form = ChangePasswordForm()
    temporary = current_user.is_password_temporary
    if form.validate_on_submit():
        username = current_user.username
        try:
            attempt = services.start_sign_in(username)
            db.session.commit()  # a wrong current password counts towards the lock, like a wrong sign-in
            services.change_password(attempt, form.current_password.data, form.new_password.data,
                                     keep_session_id=sessions.current_id())
        except DomainError as error:
            db.session.commit()  # the count of wrong current passwords persists
            flash(error.message, "error")
            return render_template("accounts/change_password.html", form=form, temporary=temporary), error.status
        db.session.commit()
        flash("密码已修改；您在其他设备或浏览器上的登录均已退出", "success")
        return redirect(url_for("accounts.home"))
    status = 422 if form.is_submitted() else 200
    return render_template("accounts/change_password.html", form=form, temporary=temporary), status


@bp.get("/account/two-factor")
@signed_in_required
def two_factor_page():
    """两步验证: its state, setting it up (QR code, then the first code), new recovery codes, switching off."""
    user = current_user
    secret = user.totp_pending_secret if not two_factor.enabled(user) else None
    response = make_response(render_template(
        "accounts/two_factor.html", form=TwoFactorCodeForm(), action=ActionForm(), enabled=two_factor.enabled(user),
        required=two_factor.required_for(user), secret=secret and two_factor.grouped(secret),
        qr=secret and two_factor.qr_svg(two_factor.provisioning_uri(user, secret)),
        unused=two_factor.unused_recovery_codes(user) if two_factor.enabled(user) else 0))
    response.headers["Cache-Control"] = "no-store"  # the pending secret is on it
    return response


@bp.post("/account/two-factor/start")
@signed_in_required
def two_factor_start():
    if not ActionForm().validate_on_submit():
        abort(400)
    try:
        with unit_of_work():
            two_factor.begin_enrolment(current_user)
    except DomainError as error:
        flash(error.message, "error")
    return redirect(url_for("accounts.two_factor_page"), 303)


@bp.post("/account/two-factor/confirm")
@signed_in_required
def two_factor_confirm():
    return _with_code(two_factor.confirm_enrolment, "两步验证已启用。请把下面的恢复码抄下或打印，妥善保管")


@bp.post("/account/two-factor/recovery-codes")
@signed_in_required
def two_factor_recovery_codes():
    return _with_code(two_factor.regenerate_recovery_codes, "已生成新的恢复码，旧的恢复码全部作废")


@bp.post("/account/two-factor/disable")
@signed_in_required
def two_factor_disable():
    return _with_code(two_factor.disable, "两步验证已关闭")


def _with_code(service, done: str):
    """An action on one's own two-factor sign-in that needs a current code; new recovery codes are
    shown once, in this answer only."""
    form = TwoFactorCodeForm()
    if not form.validate_on_submit():
        flash(next(iter(form.errors.values()))[0] if form.errors else "请输入验证码", "error")
        return redirect(url_for("accounts.two_factor_page"), 303)
    try:
        with unit_of_work():
            codes = service(current_user, form.code.data)
    except DomainError as error:
        return refused(error, "accounts.two_factor_page")
    if not codes:
        flash(done, "success")
        return redirect(url_for("accounts.two_factor_page"), 303)
    response = make_response(render_template("accounts/recovery_codes.html", codes=codes, done=done))
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/admin/users")
@roles_required(Role.ADMIN)
def users():
    search = request.args.get("q", "").strip()[:64]
    found = services.list_users(search, USERS_SHOWN)
    shown = found[:USERS_SHOWN]
    return render_template("accounts/users.html", users=shown, more=len(found) > USERS_SHOWN, search=search,
                           open_sessions=sessions.open_counts([u.id for u in shown]), now=utcnow(),
                           two_factor_roles=current_app.config["TWO_FACTOR_REQUIRED_ROLES"])


@bp.post("/admin/users/<int:user_id>/reset-password")
@roles_required(Role.ADMIN)
def reset_password(user_id: int):
    if not ActionForm().validate_on_submit():
        abort(400)
    try:
        with unit_of_work():
            user, temporary = services.reset_password(user_id, current_user)
            username, display_name = user.username, user.display_name
    except DomainError as error:
        return refused(error, "accounts.users")
    # Shown in this answer only, never put in the (readable) session cookie as a flashed message.
    response = make_response(render_template("accounts/temporary_password.html", username=username,
                                             display_name=display_name, temporary=temporary))
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.post("/admin/users/<int:user_id>/reset-two-factor")
@roles_required(Role.ADMIN)
def reset_two_factor(user_id: int):
    if not ActionForm().validate_on_submit():
        abort(400)
    try:
        with unit_of_work():
            user = services.reset_two_factor(user_id, current_user)
            username = user.username
    except DomainError as error:
        return refused(error, "accounts.users")
    flash(f"已重置 {username} 的两步验证，其所有登录已退出；下次登录后须重新设置", "success")
    return redirect(url_for("accounts.users"), 303)


@bp.post("/admin/users/<int:user_id>/sign-out")
@roles_required(Role.ADMIN)
def sign_out_everywhere(user_id: int):
    if not ActionForm().validate_on_submit():
        abort(400)
    try:
        with unit_of_work():
            ended = services.sign_out_everywhere(user_id, current_user)
    except DomainError as error:
        return refused(error, "accounts.users")
    flash(f"已结束该用户的 {ended} 个登录", "success")
    return redirect(url_for("accounts.users"), 303)
