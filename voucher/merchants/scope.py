"""What a merchant's own staff may see of its redemptions: a manager every store of the merchant, a cashier
the one store they work at. The merchant portal's pages (reports/merchant_redemptions.py and
merchant_statement.py) read only within the Scope this gives them; another merchant's or another store's
rows are never selected, whatever the query string asks for."""
from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select

from voucher.accounts.models import User
from voucher.core.db import db
from voucher.core.errors import Forbidden
from voucher.core.permissions import Role
from voucher.merchants.models import Merchant, Store


@dataclass(frozen=True)
class Scope:
    merchant: Merchant
    #: the stores the user may see (a cashier: their own), in id order
    stores: tuple[Store, ...]
    #: the one store asked for, else None (every store of `stores`)
    store_id: int | None = None
    #: the manager's view: the whole merchant, its settlement statement
    is_manager: bool = False

    @property
    def merchant_id(self) -> int:
        return self.merchant.id

    @property
    def store_ids(self) -> tuple[int, ...]:
        """The stores whose rows are read."""
        return (self.store_id,) if self.store_id is not None else tuple(s.id for s in self.stores)


def scope_for(user: User, store_id: int | None = None) -> Scope:
    """The redemptions `user` may see, narrowed to `store_id` when given. A store outside the user's own
    (another merchant's, or for a cashier another store of the same merchant) is refused as Forbidden,
    the same answer whether it exists or not."""
    if user.merchant_id is None or user.role not in (Role.MERCHANT_MANAGER.value, Role.CASHIER.value):
        raise Forbidden("只有商户管理员和收银员可以查看本商户的核销记录")
    merchant = db.session.get_one(Merchant, user.merchant_id)
    is_manager = user.role == Role.MERCHANT_MANAGER.value
    if is_manager:
        stores = tuple(db.session.scalars(select(Store).where(Store.merchant_id == merchant.id).order_by(Store.id)))
    else:
        own = db.session.get(Store, user.store_id) if user.store_id is not None else None
        if own is None or own.merchant_id != merchant.id:
            raise Forbidden("该收银员账号未关联门店，请联系商户管理员")
        stores = (own,)
    if store_id is not None and store_id not in {s.id for s in stores}:
        raise Forbidden("只能查看本商户的门店" if is_manager else "只能查看本门店的核销记录")
    return Scope(merchant=merchant, stores=stores, store_id=store_id, is_manager=is_manager)


def manager_scope(user: User) -> Scope:
    """The whole merchant, for its manager only (the settlement statement: cashiers do not see payouts)."""
    if user.role != Role.MERCHANT_MANAGER.value:
        raise Forbidden("只有商户管理员可以查看结算对账单")
    return scope_for(user)
