"""Shared setup of the connector contract tests (see suite.py for how to subclass the suite).

The sample fixtures (``samples_dir``, ``truth``) come from tests/conftest.py.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:  # so `tests.contract.suite`, `connectors` import under any runner
    sys.path.insert(0, str(REPO))

# asserts in the suite module report values like asserts in a test module
pytest.register_assert_rewrite("tests.contract.suite")
