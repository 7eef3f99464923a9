"""Scheduled jobs: each schedule slot runs once across every process, claimed by a unique row."""
