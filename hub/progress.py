"""Progress bars (rich) for long phases, drawn only when the stream is a terminal (never among JSON log lines)."""

from __future__ import annotations

from typing import Any, TextIO

#: phase → its label on the bar
PHASES: dict[str, str] = {
    "connectors": "連携読込 connectors reading",
    "hub": "ハブ処理 hub processing",
    "export": "書出 export",
    "registry": "台帳構築 registry build",
}


class Progress:
    """Progress bars (rich) for long phases — only when ``stream`` is a terminal, so they never mix with
    JSON log lines in a file or pipe. While the bars show, rich redirects stderr writes (the JSON log
    lines) above them instead of through them. Counts only, never data."""

    def __init__(self, stream: TextIO | None) -> None:
        self.enabled = stream is not None and hasattr(stream, "isatty") and stream.isatty()
        self._bars: Any = None
        self._tasks: dict[str, Any] = {}
        if self.enabled:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
            from rich.progress import Progress as Bars

            self._bars = Bars(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                              TimeElapsedColumn(), console=Console(file=stream), redirect_stderr=True,
                              redirect_stdout=False, transient=False)
            self._bars.start()

    def show(self, phase: str, done: int, total: int, force: bool = False, *, label: str | None = None) -> None:
        """``done`` of ``total`` for ``phase`` (one bar per phase; ``label`` names a new bar, else ``PHASES``)."""
        if self._bars is None:
            return
        task = self._tasks.get(phase)
        if task is None:
            task = self._tasks[phase] = self._bars.add_task(label or PHASES.get(phase, phase), total=total or None)
        self._bars.update(task, completed=done, total=total or None)

    def end(self) -> None:
        if self._bars is not None:
            self._bars.stop()
            self._bars = None
