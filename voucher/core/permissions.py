"""Roles, and the decorator every staff page uses to check them on the server.

Every view also carries `view.access`, an Access saying whom it lets in, recorded by the decorator that
checks (roles_required, signed_in_required, citizen_required, the API's `documented`) or by a marker for
a view that lets everyone in (`public`) or checks its caller in its body (`checks_itself`).
tests/test_access_matrix.py requests every route as every kind of caller and compares the answers with
it; a view with no `access` fails that test.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass
from functools import wraps
from typing import Callable

import flask_login
from flask import abort, request
from flask_login import current_user


class Role(str, enum.Enum):
    BUREAU_MAKER = "bureau_maker"
    BUREAU_APPROVER = "bureau_approver"
    MERCHANT_MANAGER = "merchant_manager"
    CASHIER = "cashier"
    FINANCE = "finance"
    AUDITOR = "auditor"
    ADMIN = "admin"

    @property
    def label(self) -> str:
        return ROLE_LABELS[self]


ROLE_LABELS = {
    Role.BUREAU_MAKER: "商务局经办人",
    Role.BUREAU_APPROVER: "商务局审批人",
    Role.MERCHANT_MANAGER: "商户管理员",
    Role.CASHIER: "收银员",
    Role.FINANCE: "财务人员",
    Role.AUDITOR: "审计人员",
    Role.ADMIN: "系统管理员",
}

BUREAU_STAFF = (Role.BUREAU_MAKER, Role.BUREAU_APPROVER, Role.ADMIN)
OVERSIGHT = (*BUREAU_STAFF, Role.FINANCE, Role.AUDITOR)


@dataclass(frozen=True)
class Access:
    """Whom a view lets in; not used by the product, read by the access-matrix test."""

    #: public (anyone), staff (signed in with one of `roles`), citizen (phone-verified), terminal (a store
    #: terminal's bearer token), partner (a channel partner's signed request), metrics (monitoring)
    caller: str
    roles: frozenset[str] = frozenset()


PUBLIC = Access("public")


def roles_required(*roles: Role) -> Callable:
    """Signed-in users with one of `roles` pass; others get 403, anonymous users the login page."""
    allowed = {r.value for r in roles}

    def decorator(view: Callable) -> Callable:
        @wraps(view)
        def wrapper(*args, **kwargs):
            if not current_user.is_authenticated:
                from flask import redirect
                from flask_login import login_url

                return redirect(login_url("accounts.login", next_url=request.full_path))
            if current_user.role not in allowed:
                abort(403)
            return view(*args, **kwargs)

        wrapper.access = Access("staff", frozenset(allowed))  # type: ignore[attr-defined]
        return wrapper

    return decorator


def signed_in_required(view: Callable) -> Callable:
    """Flask-Login's login_required (any signed-in staff user, whatever the role), recorded like roles_required."""
    wrapper = flask_login.login_required(view)
    wrapper.access = Access("staff", frozenset(r.value for r in Role))  # type: ignore[attr-defined]
    return wrapper


def public(view: Callable) -> Callable:
    """Mark a view that lets everyone in, signed in or not: a decision, not an omission."""
    view.access = PUBLIC  # type: ignore[attr-defined]
    return view


def checks_itself(caller: str) -> Callable:
    """Mark a view that checks its caller in its body (the API's token or signature, /metrics)."""

    def decorator(view: Callable) -> Callable:
        view.access = Access(caller)  # type: ignore[attr-defined]
        return view

    return decorator
