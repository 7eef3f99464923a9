"""Column mappings for the corporate-account statement exports (对公账户明细) of the major banks.

This is data, in one place: to fit a finance officer's real file, edit the bank's entry (add the header
the file uses to the field's list; the first header present in the file is used). Fields:

- value_date, serial, reference: required; reference is the column whose text is searched first for the
  batch reference (JS…) and stored as the line's remark;
- purpose: every listed column present is searched for the batch reference too and appended to the
  remark (banks put the remittance note in 用途/附言/备注 beside a 摘要 that says "转账" or "结息");
- payee_name, payee_account, balance: optional;
- the amount, one of three ways, tried in this order:
  debit (+ credit): separate 借方/贷方 columns — a debit (借方, money leaving the account) is a payout;
  amount + direction: one amount column and a 借/贷 flag column (values in debit_flags / credit_flags);
  amount alone: signed per amount_sign ("negative_is_payout": 支出记负数; "positive_is_payout": every
  line is a payout, as in the system's own template).

The account that pays merchants shows payouts as debits: a credit line is never matched to a batch.
A date column is listed before a time column (交易日期 before 交易时间): some banks write the time alone
in 交易时间. The header names follow the banks' enterprise online-banking exports as known to us; a bank's export
can differ by branch and version, which is why each field lists alternatives.
"""
from __future__ import annotations

#: values of a 借/贷 flag column, compared without spaces and case (full-width folded)
DEBIT_FLAGS = ("借", "借方", "D", "DR", "DEBIT", "支出", "支", "支取", "付", "付款", "付出", "出", "转出", "往账", "-")
CREDIT_FLAGS = ("贷", "贷方", "C", "CR", "CREDIT", "收入", "收", "收款", "存入", "入", "转入", "来账", "+")

PRESETS: dict[str, dict] = {
    "工商银行": {
        "description": "工商银行企业网银「账户明细」导出：借方/贷方发生额分列，附言在「用途」列",
        "columns": {
            "value_date": ["交易日期", "交易时间", "记账日期", "入账日期"],
            "serial": ["凭证号", "交易流水号", "流水号"],
            "reference": ["摘要"],
            "purpose": ["用途", "附言", "备注", "个性化信息"],
            "payee_name": ["对方单位名称", "对方单位", "对方户名"],
            "payee_account": ["对方账号"],
            "debit": ["借方发生额", "借方金额"],
            "credit": ["贷方发生额", "贷方金额"],
            "direction": ["借/贷", "借贷标志"],
            "balance": ["余额"],
        },
    },
    "建设银行": {
        "description": "建设银行企业网银「账户明细」导出：借方发生额（支取）/贷方发生额（收入）分列，附言在「备注」列",
        "columns": {
            "value_date": ["交易日期", "交易时间", "记账日期"],
            "serial": ["账户明细编号-交易流水号", "交易流水号", "流水号", "凭证号"],
            "reference": ["摘要"],
            "purpose": ["备注", "用途", "附言"],
            "payee_name": ["对方户名", "对方账户名称"],
            "payee_account": ["对方账号"],
            "debit": ["借方发生额（支取）", "借方发生额"],
            "credit": ["贷方发生额（收入）", "贷方发生额"],
            "balance": ["余额", "账户余额"],
        },
    },
    "中国银行": {
        "description": "中国银行企业网银「交易明细」导出：交易金额加借贷标识（或付款/收款金额分列；"
                       "两者都没有时交易金额负数为付款）；附言在「交易附言」「用途」列",
        "columns": {
            "value_date": ["交易日期", "记账日期", "交易时间"],
            "serial": ["交易流水号", "流水号", "记录标识号"],
            "reference": ["交易附言", "附言", "摘要"],
            "purpose": ["用途", "摘要", "备注"],
            "payee_name": ["对方户名", "收款人名称", "对方账户名称"],
            "payee_account": ["对方账号", "收款人账号"],
            "amount": ["交易金额", "金额"],
            "direction": ["借贷标识", "借贷标志", "交易类型"],
            "debit": ["付款金额", "支出金额"],
            "credit": ["收款金额", "收入金额"],
            "balance": ["交易后余额", "余额"],
        },
        "amount_sign": "negative_is_payout",
    },
    "农业银行": {
        "description": "农业银行企业网银「账户明细」导出：支出金额/收入金额分列，附言在「附言」「交易用途」列",
        "columns": {
            "value_date": ["交易日期", "交易时间", "记账日期"],
            "serial": ["交易流水号", "流水号", "凭证号", "日志号"],
            "reference": ["摘要", "交易摘要"],
            "purpose": ["附言", "交易附言", "交易用途", "用途"],
            "payee_name": ["对方户名", "对方账户名称"],
            "payee_account": ["对方账号"],
            "debit": ["支出金额"],
            "credit": ["收入金额"],
            "balance": ["本次余额", "余额", "账户余额"],
        },
    },
    "交通银行": {
        "description": "交通银行企业网银「账户明细」导出：借方金额/贷方金额分列，附言在「附言」列",
        "columns": {
            "value_date": ["交易日期", "交易时间", "记账日期"],
            "serial": ["流水号", "交易流水号", "会计流水号", "凭证号"],
            "reference": ["摘要"],
            "purpose": ["附言", "用途", "备注"],
            "payee_name": ["对方户名", "对方账户名称"],
            "payee_account": ["对方账号"],
            "debit": ["借方金额", "借方发生额"],
            "credit": ["贷方金额", "贷方发生额"],
            "direction": ["借贷标志", "借贷标识"],
            "balance": ["余额"],
        },
    },
}
