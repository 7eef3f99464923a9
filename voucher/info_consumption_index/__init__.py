"""ICDI-EC: the information-consumption development index of demonstration cities (docs/design.md §7 ICDI-EC)."""
