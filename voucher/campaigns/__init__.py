"""Policy measures, campaigns, funding sources, voucher products and releases (opening and drawing a
release, which mint and hand out its vouchers, is in voucher/vouchers/)."""
