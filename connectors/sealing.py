"""Seals the original bytes of a dead letter (Fernet, key from settings) so only key holders can read them."""

from __future__ import annotations

import base64

from cryptography.fernet import Fernet, InvalidToken


class SealError(ValueError):
    """A sealed original could not be opened (wrong key, or damaged)."""


class Sealer:
    """Encrypts and decrypts dead letters' original bytes with one Fernet key."""

    def __init__(self, key: str | bytes) -> None:
        raw = key.encode("ascii") if isinstance(key, str) else key
        try:
            self._fernet = Fernet(raw)
        except (ValueError, TypeError) as exc:
            raise SealError("the dead-letter key is not a Fernet key (32 url-safe base64 bytes)") from exc

    @staticmethod
    def new_key() -> str:
        return Fernet.generate_key().decode("ascii")

    @staticmethod
    def well_formed(key: str) -> bool:
        try:
            return len(base64.urlsafe_b64decode(key.encode("ascii"))) == 32
        except (ValueError, UnicodeEncodeError):
            return False

    def seal(self, original: bytes) -> str:
        return self._fernet.encrypt(original).decode("ascii")

    def open(self, sealed: str) -> bytes:
        try:
            return self._fernet.decrypt(sealed.encode("ascii"))
        except (InvalidToken, ValueError) as exc:
            raise SealError("the original cannot be opened with this key") from exc
