"""Policy measures, campaigns, funding sources, voucher products and release rounds."""
