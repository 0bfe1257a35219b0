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


# --------------------------------------------------------------------------- inside hub
#: rules that must stay free of I/O: no database, broker, HTTP, templates or logging libraries
PURE = ("hub/pipeline/alerts.py", "hub/identity/scoring.py", "hub/pipeline/timers.py", "hub/topics.py")
IO_LIBRARIES = {"sqlalchemy", "alembic", "psycopg", "kafka", "aiokafka", "faststream", "fastapi", "starlette",
                "uvicorn", "httpx", "jinja2", "prometheus_client", "typer", "structlog", "subprocess", "socket"}
#: what each part of hub may import of hub (besides itself); hub.bootstrap composes them all
HUB_LAYERS = {
    "hub.identity": {"hub.db"},
    "hub.pipeline": {"hub.db", "hub.identity", "hub.logging", "hub.topics"},
    "hub.kafka": {"hub.logging", "hub.settings", "hub.pipeline", "hub.topics"},
}
#: entry points: only these (and themselves) may import them
ENTRY_POINTS = {
    "hub.bootstrap": {"hub.run", "hub.serve", "hub.bench", "hub.cli"},
    "hub.cli": set(),
    "hub.bench": {"hub.cli"},
    "hub.run": {"hub.serve", "hub.cli"},
}


def imported_modules(path: Path) -> set[str]:
    """Every absolute module name an ``import`` or ``from … import`` statement of ``path`` names."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module)
    return found


def module_of(path: Path) -> str:
    return ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")


def within(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def hub_modules() -> list[Path]:
    return [p for p in (ROOT / "hub").rglob("*.py") if "migrations" not in p.parts]


def test_pure_rules_import_no_io() -> None:
    """Alert rules, identity scoring, stage timers and topic names import no I/O library and only pure parts of ours."""
    pure_modules = {module_of(ROOT / p) for p in PURE}
    violations = []
    for rel in PURE:
        for mod in imported_modules(ROOT / rel):
            top = mod.split(".")[0]
            if top in IO_LIBRARIES or (top == "hub" and mod not in pure_modules) or top in {"connectors", "consent"}:
                violations.append(f"{rel} imports {mod}")
    assert violations == []


def test_hub_parts_import_only_lower_layers() -> None:
    """identity needs only the database base; pipeline not the broker, HTTP or entry points; kafka not HTTP."""
    violations = []
    for path in hub_modules():
        here = module_of(path)
        for package, allowed in HUB_LAYERS.items():
            if not within(here, package):
                continue
            for mod in imported_modules(path):
                if within(mod, "hub") and not within(mod, package) and not any(within(mod, a) for a in allowed):
                    violations.append(f"{here} imports {mod}")
    assert violations == []


def test_entry_points_are_imported_only_by_entry_points() -> None:
    """bootstrap, the CLI, the bench and the batch run are composed at the top, never imported from below."""
    violations = []
    for path in hub_modules():
        here = module_of(path)
        for mod in imported_modules(path):
            for entry, importers in ENTRY_POINTS.items():
                if within(mod, entry) and not within(here, entry) and not any(within(here, i) for i in importers):
                    violations.append(f"{here} imports {mod}")
    assert violations == []


def test_layer_checker_sees_a_violation(tmp_path: Path) -> None:
    """The module reader sees a pure rule importing SQLAlchemy and a stage importing the bootstrap."""
    bad = tmp_path / "x.py"
    bad.write_text("import sqlalchemy.orm\nfrom hub.bootstrap import open_runtime\n", encoding="utf-8")
    found = imported_modules(bad)
    assert found == {"sqlalchemy.orm", "hub.bootstrap"}
    assert within("hub.bootstrap", "hub.bootstrap") and not within("hub.bootstrapper", "hub.bootstrap")
