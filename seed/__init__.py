"""Development and test data, outside the product: the demo (`flask --app wsgi seed demo`), the
illustrative ICDI-EC values, and the city's reference case as a synthetic data set (`seed city-scale`).

Not part of the installed package (pyproject.toml finds `voucher*` only), and nothing under voucher/
imports it (an import-linter contract, `lint-imports`): it imports the product, never the reverse.
It is importable from the repository root, where wsgi.py, the tests and the benchmarks run; wsgi.py
adds its commands to the `seed` group outside production (seed/cli.py).

The data files beside it are not all development data: seed/measures.toml is the policy's twenty
measures, which the product loads with `flask seed measures` (voucher/cli.py).
"""
