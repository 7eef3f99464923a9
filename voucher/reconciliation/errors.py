"""The reconciliation's domain errors (Chinese messages, mapped to pages by voucher.web)."""
from __future__ import annotations

from voucher.core.errors import DomainError, InvalidInput


class MalformedStatement(InvalidInput):
    """The file cannot be imported as it is. `problems` lists every problem found, one Chinese
    message each, most naming the row ("第 5 行：..."); nothing was written."""

    code = "malformed_statement"
    default_message = "对账单文件有误，未导入任何流水"

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__(f"对账单文件有误，未导入任何流水（{len(problems)} 处问题）")


class StatementAlreadyImported(DomainError):
    code = "statement_already_imported"
    status = 409
    default_message = "该对账单已导入过，未做任何更改"
