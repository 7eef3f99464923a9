"""CHECK constraints written from the enum they guard, so a status or kind column and its enum cannot
list different values.

`one_of("status", BatchStatus, name="status_known")` is the CHECK the migrations wrote by hand,
byte for byte: "status IN ('pending', 'exported', 'paid')", the values in the enum's order. The
constraint keeps its column and values in `info[ONE_OF]`: tests/test_migrations.py compares them with
the CHECK in the migrated database, on SQLite and PostgreSQL, so a member added to an enum fails the
suite until a migration widens the CHECK.
"""
from __future__ import annotations

import enum
from collections.abc import Iterable

from sqlalchemy import CheckConstraint

#: the key of a one_of constraint's (column, values) in its `info`
ONE_OF = "one_of"


def _values(members: Iterable[str | enum.Enum]) -> tuple[str, ...]:
    values = tuple(m.value if isinstance(m, enum.Enum) else m for m in members)
    if not values:
        raise ValueError("an IN list needs at least one value")
    for value in values:
        # written into SQL as they are: a value must not end the quoted string
        if not isinstance(value, str) or "'" in value:
            raise ValueError(f"not a plain string value: {value!r}")
    return values


def sql_list(*members: str | enum.Enum) -> str:
    """The members' values as an SQL list, "('available', 'withdrawn')", for a CHECK that says more than
    one IN (`status NOT IN ... OR ...`)."""
    return "(" + ", ".join(f"'{value}'" for value in _values(members)) + ")"


def one_of(
    column: str, values: type[enum.Enum] | Iterable[str], *, name: str, nullable: bool = False
) -> CheckConstraint:
    """CHECK "<column> IN ('a', 'b', ...)" over every member of an enum (or the strings of a tuple that is
    the list of record), in their order; with nullable, "<column> IS NULL OR <column> IN (...)"."""
    listed = _values(values)
    sql = f"{column} IN {sql_list(*listed)}"
    if nullable:
        sql = f"{column} IS NULL OR {sql}"
    return CheckConstraint(sql, name=name, info={ONE_OF: (column, listed)})
