"""Shared building blocks: database base, money, clock, errors, permissions, audit."""
