"""The progress of a long piece of work, for the person waiting on a command.

A service that takes long (the city-scale load, a baseline import, a full leverage rebuild) accepts an
optional `progress(step, done, total)` and calls it as it goes; it does not know who listens. The
commands pass to_stderr(): one line per step on standard error, "[ 40%] 标题：步骤 (2/5)", so standard
output stays the command's result, which scripts and tests read.
"""
from __future__ import annotations

from collections.abc import Callable

import click

#: (what is being done, units done, units in all)
Progress = Callable[[str, int, int], None]


def silent(step: str, done: int, total: int) -> None:
    """The default: nobody is watching."""


def to_stderr(title: str) -> Progress:
    def report(step: str, done: int, total: int) -> None:
        percent = min(100, done * 100 // total) if total else 100
        click.echo(f"[{percent:3d}%] {title}：{step}（{done:,}/{total:,}）", err=True)

    return report
