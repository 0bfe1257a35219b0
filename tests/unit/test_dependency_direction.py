"""The dependency direction of ../shared/style/EXAMPLES.md holds, read from the import statements."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
OURS = {"schemas", "connectors", "consent", "hub"}
ALLOWED = {
    "schemas": set(),
    "connectors": {"schemas", "connectors"},
    "consent": {"schemas", "consent"},
    "hub": OURS,
}


def imported_packages(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found & OURS


def test_packages_import_only_what_they_may() -> None:
    """schemas imports nothing of ours; connectors and consent only schemas; nothing imports hub."""
    violations = []
    for package, allowed in ALLOWED.items():
        for path in (ROOT / package).rglob("*.py"):
            own = {package} | allowed
            bad = imported_packages(path) - own
            if bad:
                violations.append(f"{path.relative_to(ROOT)} imports {sorted(bad)}")
    assert violations == []


def test_nothing_outside_hub_imports_hub() -> None:
    """hub composes the others; no other package (tests aside) imports it."""
    for package in ("schemas", "connectors", "consent"):
        for path in (ROOT / package).rglob("*.py"):
            assert "hub" not in imported_packages(path), path


def test_checker_sees_a_violation(tmp_path: Path) -> None:
    """The import reader detects a forbidden import, so the checks above can fail."""
    bad = tmp_path / "x.py"
    bad.write_text("from hub.pipeline.stages import HubCore\nimport consent.decide\n", encoding="utf-8")
    assert imported_packages(bad) == {"hub", "consent"}
