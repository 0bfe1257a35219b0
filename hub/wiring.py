"""Which connector reads which folder, in which phase; and the rows the export reads back.

The only module that knows every connector. The runtime itself is built by ``hub.bootstrap``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from connectors.contract import Connector
from connectors.runner import ConnectorState
from hub.settings import Settings


def registry_connectors(sources: Path) -> list[Connector]:
    from connectors.registry import RegistryConnector

    folder = sources / "registry"
    return [RegistryConnector(folder)] if folder.is_dir() else []


def case_connectors(sources: Path, settings: Settings) -> list[Connector]:
    """Consent documents first (cleaner audit), then the four fields' feeds."""
    out: list[Connector] = []
    if (sources / "consent").is_dir():
        from connectors.fhir_consent import FhirConsentConnector

        out.append(FhirConsentConnector(sources / "consent", municipality_code=settings.municipality_code))
    if (sources / "houkatsu").is_dir():
        from connectors.houkatsu import HoukatsuConnector
        from connectors.mapping import default_mapping, load_mapping

        # a centre's own mappings first (by name); files none of them match use the standard layout
        own = [load_mapping(p) for p in sorted((sources / "houkatsu").glob("*.mapping.toml"))]
        out.append(HoukatsuConnector(sources / "houkatsu", [*own, default_mapping("houkatsu")]))
    shogai_db = sources / "shogai" / "soudan.sqlite"
    if settings.shogai_database_url or shogai_db.is_file():
        from connectors.shogai import ShogaiConnector

        out.append(ShogaiConnector(settings.shogai_database_url or f"sqlite:///{shogai_db}"))
    if (sources / "kodomo").is_dir():
        from connectors.kodomo import KodomoReplayConnector

        out.append(KodomoReplayConnector(sources / "kodomo", settings.kodomo_replay_secret()))
    if (sources / "jiritsu").is_dir():
        from connectors.jiritsu import JiritsuConnector

        out.append(JiritsuConnector(sources / "jiritsu"))
    return out


def phases(sources: Path, settings: Settings, _state: ConnectorState) -> Iterator[list[Connector]]:
    """The registry is reference data: the hub has it before it resolves anyone's case."""
    first = registry_connectors(sources)
    if first:
        yield first
    rest = case_connectors(sources, settings)
    if rest:
        yield rest


def persons_rows(s: Session) -> Iterator[dict[str, Any]]:
    from hub.identity.resolver import persons_export

    for record, person, household in persons_export(s):
        yield {"record": record, "person": person, "household": household}


def audit_rows(s: Session) -> Iterator[dict[str, Any]]:
    from consent.store import iter_audit

    for entry in iter_audit(s):
        yield entry.to_json()
