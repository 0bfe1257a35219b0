"""Consent registry, sharing decision and audit trail (../shared/domain/sharing-rules.md).

``consent.model`` holds the values, ``consent.decide`` the pure decision, ``consent.fhir`` the FHIR R5
mapping, ``consent.audit`` the hash chain and ``consent.store`` the SQL tables. Imports only ``schemas``.
"""

from __future__ import annotations

from consent.audit import GENESIS, AuditEntry, AuditInput, VerifyResult, chain, entry_hash, verify
from consent.decide import decide, minimal_form
from consent.model import (
    RULE_VERSION,
    ConsentVersion,
    Decision,
    DecisionInput,
    Designation,
    EmergencyOverride,
)

__all__ = [
    "GENESIS",
    "RULE_VERSION",
    "AuditEntry",
    "AuditInput",
    "ConsentVersion",
    "Decision",
    "DecisionInput",
    "Designation",
    "EmergencyOverride",
    "VerifyResult",
    "chain",
    "decide",
    "entry_hash",
    "minimal_form",
    "verify",
]
