"""The reconciliation's domain errors (Chinese messages, mapped to pages by voucher.web)."""
from __future__ import annotations

from voucher.core.errors import DomainError, RefusedFile


class MalformedStatement(RefusedFile):
    """The statement file cannot be imported as it is; nothing was written."""

    code = "malformed_statement"
    default_message = "对账单文件有误，未导入任何流水"

    def summary(self) -> str:
        return f"对账单文件有误，未导入任何流水（{self.total} 处问题）"


class StatementAlreadyImported(DomainError):
    code = "statement_already_imported"
    status = 409
    default_message = "该对账单已导入过，未做任何更改"
