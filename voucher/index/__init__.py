"""ICDI-EC: the information-consumption development index of demonstration cities (DESIGN.md section 7)."""
