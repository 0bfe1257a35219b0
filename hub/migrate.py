"""Alembic migrations for the hub's database (hub, identity and consent tables)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

from hub.settings import Settings

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    cfg.attributes["configure_logger"] = False
    return cfg


def upgrade(url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(url), revision)


def database_url_for(settings: Settings, state_dir: Path) -> str:
    if settings.database_url:
        return settings.database_url
    return f"sqlite:///{state_dir / 'hub.sqlite'}"
