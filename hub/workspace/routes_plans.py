"""The /plans screens (owned by WC; stub from WA's foundation commit so the app imports)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
