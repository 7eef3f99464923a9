"""Web plumbing shared by every domain: the unit of work, the answer to a refused action, error pages,
template helpers."""
from __future__ import annotations

import json
from contextlib import contextmanager
from typing import Callable, Iterator, TypeVar

from flask import Flask, flash, jsonify, make_response, redirect, render_template, request, url_for
from flask.sessions import SecureCookieSession, SecureCookieSessionInterface
from flask_login import current_user
from flask_wtf.csrf import CSRFError
from sqlalchemy.exc import DataError, DBAPIError
from werkzeug.wrappers import Response as BaseResponse

from voucher.campaigns.services import approvals_waiting
from voucher.core.clock import to_local
from voucher.core.db import db, is_conflict
from voucher.core.errors import ConcurrentChange, DomainError
from voucher.core.masking import mask_account_no, mask_phone
from voucher.core.money import format_yuan
from voucher.core.permissions import ROLE_LABELS, Role
from voucher.core.uploads import MAX_BYTES, MB
from voucher.ledger.models import AccountKind
from voucher.ops.limits import RETRY_MESSAGE, RateLimited
from voucher.vouchers.codes import display as display_code

T = TypeVar("T")


@contextmanager
def unit_of_work() -> Iterator[None]:
    """One commit per request's change; any error rolls everything back, so nothing is half-done.

    Two transactions colliding (is_conflict) end as ConcurrentChange, a 409 with a message, never a 500."""
    try:
        yield
        db.session.commit()
    except DBAPIError as error:
        db.session.rollback()
        if is_conflict(error):
            raise ConcurrentChange() from error
        raise
    except BaseException:
        db.session.rollback()
        raise


def in_transaction(work: Callable[[], T]) -> T:
    """Run `work` as one unit of work; if it collides with another transaction, run it once more on
    fresh data (the service then usually finds the other one's result: "already done"), and answer
    ConcurrentChange if it collides again."""
    try:
        with unit_of_work():
            return work()
    except ConcurrentChange:
        db.session.expire_all()
    with unit_of_work():
        return work()


def refused(error: Exception, endpoint: str, /, *, within: str | None = None, **values) -> BaseResponse:
    """The answer to an action a service refused, for a form posted from a page: the error's message
    flashed, and the browser sent back (303 See Other) to `endpoint`, with `values` as url_for takes them;
    with `within`, to the page the form came from instead (see back_to).

        except DomainError as error:
            return refused(error, "accounts.users")

    `error` is a DomainError, or an error whose str() is already a message for the person (the index's
    MethodError). A form that must be shown again with what was typed is re-rendered with error.status
    instead."""
    flash(getattr(error, "message", str(error)), "error")
    return redirect(back_to(endpoint, within=within, **values) if within else url_for(endpoint, **values), 303)


def back_to(endpoint: str, /, *, within: str | None = None, **values) -> str:
    """Where to send the browser after a form: the page it was posted from, as its hidden `next` field
    names it, when that is a local path under `within` (so a filtered list stays filtered); otherwise
    url_for(endpoint). Never another site: "//host" and backslashes are refused."""
    target = request.form.get("next") or ""
    if within and target.startswith(within) and "//" not in target and "\\" not in target \
            and target.isprintable():  # a line break would reach the Location header (a 500)
        return target
    return url_for(endpoint, **values)


class CookieSessions(SecureCookieSessionInterface):
    """Flask's signed-cookie sessions, except that a request without a session cookie (every API
    call: terminals and partners send tokens and signatures, never cookies) gets its empty session
    without a signing serializer being built for it first, as Flask does on every request."""

    def open_session(self, app: Flask, request) -> SecureCookieSession | None:
        if app.secret_key and not request.cookies.get(self.get_cookie_name(app)):
            return self.session_class()
        return super().open_session(app, request)


def _wants_json() -> bool:
    return request.path.startswith("/api/") or request.accept_mimetypes.best == "application/json"


def _size(limit: int | None) -> str:
    if not limit:
        return "上限"
    return f"{limit // MB} MB" if limit >= MB else f"{limit // 1024} KB"


def register_error_handlers(app: Flask) -> None:
    def page(status: int, title: str, message: str):
        db.session.rollback()
        if _wants_json():
            return jsonify(success=False, errors=[{"code": title, "message": message}]), status
        return render_template("error.html", status=status, message=message), status

    @app.errorhandler(DomainError)
    def domain_error(error: DomainError):
        response = make_response(*page(error.status, error.code, error.message))
        retry_after = getattr(error, "retry_after", None)
        if retry_after:  # the waiting room (errors.Queued): when to come back
            response.headers["Retry-After"] = str(retry_after)
        return response

    @app.errorhandler(DataError)
    def data_error(error: DataError):
        # Input the forms let through but the database cannot hold (a number out of range): the
        # caller's mistake, answered as one, never a 500.
        return page(422, "invalid_input", "输入的数值超出允许范围")

    @app.errorhandler(DBAPIError)
    def database_error(error: DBAPIError):
        # A collision outside any unit of work (a read that waited on a lock and lost): answered as
        # one. Any other database error is a bug, answered as a 500 and logged by Flask.
        if is_conflict(error):
            return page(ConcurrentChange.status, ConcurrentChange.code, ConcurrentChange.default_message)
        raise error

    @app.errorhandler(CSRFError)
    def csrf_error(error: CSRFError):
        return page(400, "csrf_failed", "页面已过期或来源无法验证，请刷新页面后重试")

    @app.errorhandler(400)
    def bad_request(error):
        return page(400, "bad_request", "请求格式不正确")

    @app.errorhandler(403)
    def forbidden(error):
        return page(403, "forbidden", "您没有访问此页面的权限")

    @app.errorhandler(404)
    def not_found(error):
        return page(404, "not_found", "页面不存在")

    @app.errorhandler(405)
    def method_not_allowed(error):
        response = make_response(*page(405, "method_not_allowed", "不支持该请求方式"))
        # RFC 9110: a 405 names the methods the resource supports (werkzeug's own answer does).
        if getattr(error, "valid_methods", None):
            response.headers["Allow"] = ", ".join(error.valid_methods)
        return response

    @app.errorhandler(413)
    def payload_too_large(error):
        # A body past the request's max_content_length: an upload past MAX_CONTENT_LENGTH, or an API body
        # past the API's own limit (voucher/api/body.py). The answer says what the limit is.
        if _wants_json():
            return page(413, "payload_too_large", f"请求体过大：接口请求不能超过 {_size(request.max_content_length)}")
        return page(413, "payload_too_large",
                    f"上传的文件过大：单个文件不能超过 {_size(MAX_BYTES)}。请拆分成几个较小的文件分别导入，"
                    "或删去不需要的列和行后再试")

    @app.errorhandler(429)
    def too_many_requests(error):
        # A rate limit (voucher/ops/limits.py) refused the request; its own message says which.
        limited = isinstance(error, RateLimited)
        response = make_response(*page(429, "rate_limited", error.description if limited else RETRY_MESSAGE))
        if limited and error.retry_after:
            response.headers["Retry-After"] = str(error.retry_after)
        return response

    @app.errorhandler(500)
    def server_error(error):
        return page(500, "server_error", "系统内部错误，已记录，请稍后重试")


def register_template_helpers(app: Flask) -> None:
    @app.context_processor
    def waiting_for_the_approver() -> dict[str, int]:
        """The count beside 待审批 in the navigation: for an approver only (one query on their pages)."""
        if getattr(current_user, "role", None) == Role.BUREAU_APPROVER.value:
            return {"approvals_waiting": approvals_waiting()}
        return {}

    app.jinja_env.filters["yuan"] = format_yuan
    app.jinja_env.filters["voucher_code"] = display_code
    app.jinja_env.filters["masked_account"] = mask_account_no
    app.jinja_env.filters["masked_phone"] = mask_phone
    app.jinja_env.filters["local_time"] = lambda value: to_local(value).strftime("%Y-%m-%d %H:%M") if value else "—"
    # JSON as a reader sees it (Chinese as is); autoescaping still applies on the page
    app.jinja_env.filters["json_text"] = lambda value: json.dumps(value, ensure_ascii=False, sort_keys=True)
    app.jinja_env.globals["ROLE_LABELS"] = ROLE_LABELS
    app.jinja_env.globals["Role"] = Role
    app.jinja_env.globals["AccountKind"] = AccountKind
