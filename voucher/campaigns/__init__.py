"""Policy measures, campaigns, funding sources, voucher products and release rounds (opening and drawing a
round, which mint and hand out its vouchers, is in voucher/vouchers/)."""
