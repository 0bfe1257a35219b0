"""The consent officers' screens (/consents): a resident's consents, record one, withdraw one."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
