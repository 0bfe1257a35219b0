"""The connector contract for the non-CSV feeds: shogai (SQL tables), kodomo (webhook replay), consent (FHIR)."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import pytest

from connectors.contract import Connector
from connectors.fhir_consent import FhirConsentConnector
from connectors.kodomo import KodomoReplayConnector, sign
from connectors.shogai import ShogaiConnector
from tests.contract.suite import SAMPLES_DIR, ConnectorContract, SourceKind

pytestmark = pytest.mark.skipif(not SAMPLES_DIR.is_dir(), reason="sample feeds not available")

KODOMO_SECRET = b"kodomo-sample-secret"


class TestShogaiContract(ConnectorContract):
    """Source: a SQLite copy of the sample tables (the PostgreSQL path is covered in tests/unit)."""

    def make_source(self, tmp_path: Path, kind: SourceKind) -> str:
        path = tmp_path / "soudan.sqlite"
        shutil.copy(SAMPLES_DIR / "shogai" / "soudan.sqlite", path)
        path.chmod(0o644)
        con = sqlite3.connect(path)
        try:
            if kind == "empty":
                con.execute("DELETE FROM t_soudan")
                con.execute("DELETE FROM t_riyousha")
            elif kind == "broken":
                # among the sample rows in time: an unknown kadai, and a client with an impossible birth date
                con.execute(
                    "INSERT INTO t_soudan VALUES (6001, 109, '2025-10-17', '基本相談', '就労,借金', '受付', NULL,"
                    " NULL, '2025-10-17 10:35:00')"
                )
                con.execute(
                    "INSERT INTO t_riyousha VALUES (901, NULL, '試験　花子', 'シケン　ハナコ', '19800231', 2,"
                    " '中央1-2-3', NULL, '身体', '2025-11-25 09:00:00')"
                )
            con.commit()
        finally:
            con.close()
        return f"sqlite:///{path}"

    def make_connector(self, source: str) -> Connector:
        return ShogaiConnector(source)


class TestKodomoReplayContract(ConnectorContract):
    """Source: a folder of delivery files replayed through the webhook core."""

    def make_source(self, tmp_path: Path, kind: SourceKind) -> Path:
        folder = tmp_path / "kodomo"
        if kind == "empty":
            folder.mkdir()
            return folder
        shutil.copytree(SAMPLES_DIR / "kodomo", folder)
        if kind == "broken":
            body = json.dumps({"event": "record.created", "record": {"kiroku_id": "K2026-9998"}}).encode()
            forged = {"X-Delivery-Id": "d-5000000000000000", "X-Signature": sign(b"wrong-secret", body)}
            (folder / "d-5000000000000000.json").write_text(
                json.dumps({"headers": forged, "body": body.decode()}), encoding="utf-8"
            )
            signed_junk = b'{"event": "record.created", "record": '
            junk_headers = {"X-Delivery-Id": "d-6000000000000000", "X-Signature": sign(KODOMO_SECRET, signed_junk)}
            (folder / "d-6000000000000000.json").write_text(
                json.dumps({"headers": junk_headers, "body": signed_junk.decode()}), encoding="utf-8"
            )
        return folder

    def make_connector(self, source: Path) -> Connector:
        return KodomoReplayConnector(source, KODOMO_SECRET)


class TestFhirConsentContract(ConnectorContract):
    """Source: a folder of FHIR R5 Consent resources."""

    def make_source(self, tmp_path: Path, kind: SourceKind) -> Path:
        folder = tmp_path / "consent"
        if kind == "empty":
            folder.mkdir()
            return folder
        shutil.copytree(SAMPLES_DIR / "consent", folder)
        if kind == "broken":
            doc = json.loads((folder / "consent-0020.json").read_text(encoding="utf-8"))
            doc["id"] = "consent-0020b"
            del doc["subject"]
            (folder / "consent-0020b.json").write_text(json.dumps(doc), encoding="utf-8")
            (folder / "consent-0020c.json").write_text('{"resourceType": "Consent"', encoding="utf-8")
        return folder

    def make_connector(self, source: Path) -> Connector:
        return FhirConsentConnector(source)
