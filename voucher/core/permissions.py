"""Roles, and the decorator every staff page uses to check them on the server."""
from __future__ import annotations

import enum
from functools import wraps
from typing import Callable

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


def roles_required(*roles: Role) -> Callable:
    """Signed-in users with one of `roles` pass; others get 403, anonymous users the login page."""
    allowed = {r.value for r in roles}

    def decorator(view: Callable) -> Callable:
        @wraps(view)
        def wrapper(*args, **kwargs):
            if not current_user.is_authenticated:
                from flask_login import login_url
                from flask import redirect

                return redirect(login_url("accounts.login", next_url=request.full_path))
            if current_user.role not in allowed:
                abort(403)
            return view(*args, **kwargs)

        wrapper.required_roles = allowed  # type: ignore[attr-defined]  # read by the route-coverage test
        return wrapper

    return decorator
