"""The ``tsunagu`` command line: the typer app and its sub-commands."""
