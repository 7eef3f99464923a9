"""Every model, imported in one place so the metadata is complete (for Alembic and create_all in tests)."""
from voucher.accounts.models import User, UserSession  # noqa: F401
from voucher.analytics.models import (  # noqa: F401
    CausalPanelUnit,
    CausalPanelWeek,
    DailyStat,
    LeverageFact,
    LeverageMerchantDay,
    MerchantDailySales,
    RollupState,
    SyntheticTruth,
)
from voucher.api.models import Partner, PartnerNonce  # noqa: F401
from voucher.campaigns.models import (  # noqa: F401
    BudgetChange,
    Campaign,
    FundingSource,
    GrantApplication,
    LotteryEntry,
    Measure,
    MeasureMoneyLine,
    MeasureTarget,
    Release,
    TargetProgress,
    VoucherProduct,
)
from voucher.core.audit import AuditEntry  # noqa: F401
from voucher.core.audit_chain import AuditSeal  # noqa: F401
from voucher.info_consumption_index.models import (  # noqa: F401
    CatalogueIndicator,
    CatalogueVersion,
    IndexComputation,
    IndexImportBatch,
    IndexValue,
)
from voucher.jobs.models import JobRun, SchedulerHeartbeat  # noqa: F401
from voucher.ledger.models import JournalEntry, LedgerAccount, Posting  # noqa: F401
from voucher.ledger.periods import ClosedPeriod  # noqa: F401
from voucher.merchants.models import Merchant, Redemption, RiskFlag, Store, StoreTerminal  # noqa: F401
from voucher.reconciliation.models import BankStatement, BankStatementLine, BatchResolution, StatementMapping  # noqa: F401
from voucher.settlement.models import SettlementBatch, SettlementItem  # noqa: F401
from voucher.vouchers.models import Citizen, OneTimeCode, Voucher  # noqa: F401
