"""``python -m hub.cli.main``: the ``tsunagu`` command."""

from hub.cli.main import app

app()
