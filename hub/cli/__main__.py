"""``python -m hub.cli``: the ``tsunagu`` command."""

from hub.cli.main import app

app()
