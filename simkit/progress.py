"""A progress bar over a count of runs (stress variants, explain changes, sensitivity sets):
one rich bar on stderr, shown only on a terminal; a no-op otherwise."""

from __future__ import annotations

import sys

__all__ = ["RunsBar"]


class RunsBar:
    """`RunsBar(enabled, total, label, done=0, width=36)`: `show(what)` names the run in
    progress (the bar's `{what}` field), `advance()` counts one finished, `close()` ends it."""

    def __init__(self, enabled: bool, total: int, label: str, done: int = 0, width: int = 36):
        self.bar = None
        if enabled and sys.stderr.isatty() and total > done:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            self.bar = Progress(
                TextColumn(f"{label} {{task.fields[what]:<{width}}}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                TextColumn("ETA"),
                TimeRemainingColumn(),
                console=Console(stderr=True),
            )
            self.bar.start()
            self.task = self.bar.add_task(label, total=total, completed=done, what="")

    def show(self, what: str) -> None:
        if self.bar is not None:
            self.bar.update(self.task, what=what)

    def advance(self) -> None:
        if self.bar is not None:
            self.bar.advance(self.task)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()
