"""ICDI-EC tables: the versioned indicator catalogue, city-year values with their source, import batches,
and the record of each computation (which catalogue version, which settings)."""
from __future__ import annotations

import enum
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import JSON, CheckConstraint, DateTime, Float, ForeignKey, Index, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from voucher.core.db import Model, created_at, intpk
from voucher.core.enum_check import one_of
from voucher.core.uploads import FileType
from voucher.info_consumption_index.method import FIRST_LEVELS, KINDS

if TYPE_CHECKING:
    from voucher.accounts.models import User


class VersionStatus(str, enum.Enum):
    DRAFT = "draft"
    PENDING_APPROVAL = "pending_approval"
    ACTIVE = "active"
    RETIRED = "retired"
    REJECTED = "rejected"

    @property
    def label(self) -> str:
        return {"draft": "草稿", "pending_approval": "待审批", "active": "生效中", "retired": "已停用",
                "rejected": "已退回"}[self.value]


#: the only moves a catalogue version may make (an approval also retires the version it replaces)
VERSION_TRANSITIONS = {
    VersionStatus.DRAFT: {VersionStatus.PENDING_APPROVAL},
    VersionStatus.PENDING_APPROVAL: {VersionStatus.ACTIVE, VersionStatus.REJECTED},
    VersionStatus.REJECTED: {VersionStatus.PENDING_APPROVAL},
    VersionStatus.ACTIVE: {VersionStatus.RETIRED},
    VersionStatus.RETIRED: set(),
}


class CatalogueVersion(Model):
    """One version of the indicator catalogue and its weights. Exactly one is active; an edit is a new
    version, drafted by an administrator and approved by someone else before it takes effect."""

    __tablename__ = "index_catalogue_versions"
    __table_args__ = (
        one_of("status", VersionStatus, name="status_known"),
        CheckConstraint("version > 0", name="version_positive"),
        # Exactly one version is in force: two approvals at once cannot both make theirs active.
        Index("uq_index_catalogue_versions_one_active", "status", unique=True,
              sqlite_where=text("status = 'active'"), postgresql_where=text("status = 'active'")),
    )

    id: Mapped[intpk]
    version: Mapped[int] = mapped_column(unique=True)
    status: Mapped[str] = mapped_column(String(20))
    #: what changed and why, shown to the approver
    note: Mapped[str] = mapped_column(Text, default="")
    #: null for version 1, which the migration installs
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    submitted_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    approved_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    approved_at: Mapped[datetime | None] = mapped_column(DateTime)
    rejection_reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[created_at]

    indicators: Mapped[list[CatalogueIndicator]] = relationship(
        back_populates="catalogue_version", order_by="CatalogueIndicator.position", cascade="all, delete-orphan"
    )
    created_by: Mapped[User | None] = relationship("User", foreign_keys=[created_by_id])
    approved_by: Mapped[User | None] = relationship("User", foreign_keys=[approved_by_id])

    @property
    def status_enum(self) -> VersionStatus:
        return VersionStatus(self.status)


class CatalogueIndicator(Model):
    """A third-level indicator of one catalogue version, with its absolute weight."""

    __tablename__ = "index_indicators"
    __table_args__ = (
        UniqueConstraint("version_id", "code"),
        one_of("kind", KINDS, name="kind_known"),
        one_of("first_level", FIRST_LEVELS, name="first_level_known"),
        CheckConstraint("weight >= 0 AND weight <= 1", name="weight_range"),
    )

    id: Mapped[intpk]
    version_id: Mapped[int] = mapped_column(ForeignKey("index_catalogue_versions.id"), index=True)
    position: Mapped[int]
    #: the stable identifier (D1-D3, S1-S13, E1-E7) used by imports, exports and the API
    code: Mapped[str] = mapped_column(String(8))
    name: Mapped[str] = mapped_column(String(120))
    unit: Mapped[str] = mapped_column(String(20))
    #: share (entered in percent, 0-100, threshold 100 %) or numeric (threshold median + 2 sd)
    kind: Mapped[str] = mapped_column(String(10))
    first_level: Mapped[str] = mapped_column(String(12))
    second_level: Mapped[str] = mapped_column(String(40))
    #: absolute weight; the weights of a version sum to 1
    weight: Mapped[float] = mapped_column(Float)

    catalogue_version: Mapped[CatalogueVersion] = relationship(back_populates="indicators")


class ValueSource(str, enum.Enum):
    OFFICIAL = "official"  # imported or entered official statistics: always win
    CAMPAIGN_FEED = "campaign_feed"  # published by this system's campaign side, for the home city

    @property
    def label(self) -> str:
        return {"official": "官方数据", "campaign_feed": "活动数据推送（已执行补贴）"}[self.value]


#: The file name the illustrative values are imported under (seed/index_demo.csv, which `flask seed demo`
#: loads): while a batch of that name is in, every page and export says the data are 示意数据, synthetic
#: and not official statistics (docs/icdi-ec.md, "Illustrative data").
DEMO_FILE_NAME = "index_demo.csv"


class ImportLayout(str, enum.Enum):
    LONG = "long"  # one row per city, year and indicator
    WIDE = "wide"  # one row per city and year, a column per indicator


class IndexImportBatch(Model):
    """One accepted import file (a refused file leaves no row at all)."""

    __tablename__ = "index_import_batches"
    __table_args__ = (
        one_of("layout", ImportLayout, name="layout_known"),
        one_of("file_type", FileType, name="file_type_known"),
    )

    id: Mapped[intpk]
    file_name: Mapped[str] = mapped_column(String(200))
    file_type: Mapped[str] = mapped_column(String(8))
    layout: Mapped[str] = mapped_column(String(8))
    cells: Mapped[int]
    #: cells that replaced an earlier official value
    replaced: Mapped[int] = mapped_column(default=0)
    imported_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[created_at]

    imported_by: Mapped[User | None] = relationship("User")


class IndexValue(Model):
    """One city-year value of an indicator (by code) from one source. Official and campaign-fed values
    are kept side by side: the computation takes the official one where both exist."""

    __tablename__ = "index_values"
    __table_args__ = (
        UniqueConstraint("city", "year", "code", "source"),
        one_of("source", ValueSource, name="source_known"),
        CheckConstraint("year BETWEEN 1990 AND 2100", name="year_range"),
        CheckConstraint("value >= 0", name="value_not_negative"),
    )

    id: Mapped[intpk]
    city: Mapped[str] = mapped_column(String(40), index=True)
    year: Mapped[int] = mapped_column(index=True)
    code: Mapped[str] = mapped_column(String(8))
    #: in the indicator's unit; a share in percent (0-100)
    value: Mapped[float] = mapped_column(Float)
    source: Mapped[str] = mapped_column(String(16))
    batch_id: Mapped[int | None] = mapped_column(ForeignKey("index_import_batches.id"), index=True)
    #: for a campaign-fed value: the campaigns, their executed money, when it was computed
    provenance: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    updated_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    updated_at: Mapped[created_at]

    batch: Mapped[IndexImportBatch | None] = relationship()


class IndexComputation(Model):
    """A recorded computation: the catalogue version and settings it used, and its headline results."""

    __tablename__ = "index_computations"

    id: Mapped[intpk]
    catalogue_version_id: Mapped[int] = mapped_column(ForeignKey("index_catalogue_versions.id"), index=True)
    settings: Mapped[dict[str, Any]] = mapped_column(JSON)
    years: Mapped[list[int]] = mapped_column(JSON)
    #: {year: {"average": float, "rows": [{city, composite, demand, supply, environment, rank, imputed}],
    #: "warnings": [text]}}; a year a missing value kept out: {"average": None, "rows": [], "missing": [[city, year, code]]}
    results: Mapped[dict[str, Any]] = mapped_column(JSON)
    computed_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[created_at]

    catalogue_version: Mapped[CatalogueVersion] = relationship()
