"""Server-side paging for every staff list: a page of rows, the total the filters select, the page
links. A list never stops silently at a cap: the reader sees how many there are and can go to any page.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from sqlalchemy import Select, func, select

from voucher.core.db import reads
from voucher.core.forms import parse_id

T = TypeVar("T")

PAGE_SIZE = 50


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    number: int
    size: int
    total: int

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.size))

    @property
    def first_row(self) -> int:
        """The 1-based position of the first row shown (0 when there is none)."""
        return (self.number - 1) * self.size + 1 if self.items else 0

    @property
    def last_row(self) -> int:
        return self.first_row + len(self.items) - 1 if self.items else 0

    def numbers(self, around: int = 2) -> list[int | None]:
        """Page numbers to link: the first, the last and those near this one; None where some are left out."""
        wanted = {1, self.pages, *range(self.number - around, self.number + around + 1)}
        shown: list[int | None] = []
        for n in sorted(n for n in wanted if 1 <= n <= self.pages):
            if shown and shown[-1] is not None and n - shown[-1] > 1:  # type: ignore[operator]
                shown.append(None)
            shown.append(n)
        return shown


def page_number(text: str | None) -> int:
    """?page= as typed: a positive whole number, else the first page."""
    return parse_id(text) or 1


def clamp(number: int, total: int, size: int = PAGE_SIZE) -> int:
    """The page to show when `number` is asked for: a number past the last page shows the last page."""
    return min(max(1, number), max(1, -(-total // size)))


def page_of(query: Select[Any], number: int, size: int = PAGE_SIZE, *, scalars: bool = True) -> Page[Any]:
    """One page of `query`, which must order its rows (a page of an unordered query is not a page).
    A number past the last page shows the last page."""
    total = reads().scalar(select(func.count()).select_from(query.order_by(None).subquery())) or 0
    number = clamp(number, total, size)
    bounded = query.limit(size).offset((number - 1) * size)
    result = reads().execute(bounded)
    rows = list(result.scalars()) if scalars else list(result.all())
    return Page(rows, number, size, total)
