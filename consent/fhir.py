"""FHIR R5 ``Consent`` ⇄ ``ConsentV1``: re-exported from :mod:`schemas.fhir_consent`.

There is one mapping, in ``schemas`` so the consent-documents connector (which may import only
``schemas``) and the consent package read and write FHIR the same way; see that module for the
mapping rules, the round-trip guarantee of ``to_fhir`` and the 自立相談支援 form's consent.
"""

from __future__ import annotations

from schemas.fhir_consent import (
    CONSENT_ID_SYSTEM,
    DEFAULT_MUNICIPALITY,
    FIELD_SYSTEM,
    ORIGIN_SYSTEM,
    PARTICIPATION_TYPE,
    PURPOSE_SYSTEM,
    RECORD_KEY_SYSTEM,
    SUBJECT_RECORD_EXTENSION,
    VERSION_EXTENSION,
    InvalidConsentDocument,
    grantor_of,
    jiritsu_consent,
    parse_consent,
    to_fhir,
)

__all__ = [
    "CONSENT_ID_SYSTEM",
    "DEFAULT_MUNICIPALITY",
    "FIELD_SYSTEM",
    "ORIGIN_SYSTEM",
    "PARTICIPATION_TYPE",
    "PURPOSE_SYSTEM",
    "RECORD_KEY_SYSTEM",
    "SUBJECT_RECORD_EXTENSION",
    "VERSION_EXTENSION",
    "InvalidConsentDocument",
    "grantor_of",
    "jiritsu_consent",
    "parse_consent",
    "to_fhir",
]
