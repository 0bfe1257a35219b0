"""The deployment files name only what tsunagu has: images, commands, ports, volumes, settings and metrics.

Parsed: deploy/docker-compose.yml, deploy/Dockerfile, deploy/k8s/*.yaml, deploy/prometheus/*.yml and
deploy/grafana/provisioning/**. Settings are the fields of ``hub.settings.Settings`` (with its env
prefix); metrics are read from the ``Counter(``/``Gauge(``/``…MetricFamily(`` calls in the code. A
setting or metric the files need before the code has it is listed under "Planned" in
deploy/SETTINGS.md or deploy/METRICS.md; ``test_planned_settings_and_metrics_are_wired`` fails until
those lists are empty.
"""

from __future__ import annotations

import ast
import importlib
import json
import re
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import promql_parser as pql
import typer.main
import yaml

from hub.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
CODE_DIRS = ("schemas", "connectors", "consent", "hub")
#: labels Prometheus adds to every series (scrape target, Kubernetes discovery)
TARGET_LABELS = frozenset({"job", "instance", "pod", "namespace", "container"})
#: series Prometheus itself makes for each scrape target
PROMETHEUS_SERIES = {"up": TARGET_LABELS}
#: PersistentVolumeClaims the municipality provides (deploy/README.md says so); not in deploy/k8s
EXTERNAL_CLAIMS = {"tsunagu-feeds"}
HEALTH_RULES = {
    "TsunaguFeedStalled",
    "TsunaguConsumerLagGrowing",
    "TsunaguConnectorOutboxGrowing",
    "TsunaguHubOutboxGrowing",
    "TsunaguDeadLetterRateHigh",
}


# -- reading the project -----------------------------------------------------------------------------


def _table(md: Path, heading: str) -> list[list[str]]:
    """The rows (cells) of the first Markdown table under ``## heading`` in ``md``."""
    rows: list[list[str]] = []
    inside = False
    for line in md.read_text(encoding="utf-8").splitlines():
        if line.startswith("## "):
            inside = line[3:].strip() == heading
            continue
        if inside and line.startswith("|"):
            cells = [c.strip() for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]]
            if cells and not set(cells[0]) <= {"-", ":"}:
                rows.append(cells)
    return rows[1:]  # without the header row


def _ticked(cell: str) -> list[str]:
    return re.findall(r"`([^`]+)`", cell)


def planned_settings() -> set[str]:
    return {_ticked(row[0])[0] for row in _table(DEPLOY / "SETTINGS.md", "Planned")}


@dataclass(frozen=True)
class MetricDef:
    kind: str  # counter | gauge | histogram | summary | info | stateset
    labels: frozenset[str]
    where: str


def _metric_rows(heading: str) -> dict[str, MetricDef]:
    out = {}
    for row in _table(DEPLOY / "METRICS.md", heading):
        out[_ticked(row[0])[0]] = MetricDef(row[1], frozenset(_ticked(row[2])), f"METRICS.md {heading}")
    return out


def planned_metrics() -> dict[str, MetricDef]:
    return _metric_rows("Planned")


def settings_env() -> set[str]:
    """The environment variables ``Settings`` reads."""
    prefix = str(Settings.model_config.get("env_prefix", ""))
    names = set()
    for name, field in Settings.model_fields.items():
        names.add((prefix + name).upper())
        for alias in (field.alias, field.validation_alias):
            if isinstance(alias, str):
                names.add(alias.upper())
    return names


_METRIC_CLASSES = {
    "Counter": "counter",
    "Gauge": "gauge",
    "Histogram": "histogram",
    "Summary": "summary",
    "Info": "info",
    "Enum": "stateset",
    "CounterMetricFamily": "counter",
    "GaugeMetricFamily": "gauge",
    "HistogramMetricFamily": "histogram",
    "SummaryMetricFamily": "summary",
    "InfoMetricFamily": "info",
    "StateSetMetricFamily": "stateset",
}


def code_metrics() -> dict[str, MetricDef]:
    """Metric families the code registers, by the name Prometheus shows (counters with ``_total``)."""
    found: dict[str, MetricDef] = {}
    for top in CODE_DIRS:
        for path in sorted((ROOT / top).rglob("*.py")):
            tree = ast.parse(path.read_text(encoding="utf-8"))
            for node in ast.walk(tree):
                if not isinstance(node, ast.Call):
                    continue
                fn = node.func
                cls = fn.attr if isinstance(fn, ast.Attribute) else fn.id if isinstance(fn, ast.Name) else ""
                if cls not in _METRIC_CLASSES or not node.args:
                    continue
                first = node.args[0]
                if not (
                    isinstance(first, ast.Constant)
                    and isinstance(first.value, str)
                    and first.value.startswith("tsunagu_")
                ):
                    continue
                where = f"{path.relative_to(ROOT)}:{node.lineno}"
                kw = {k.arg: k.value for k in node.keywords}
                pos = 3 if cls.endswith("MetricFamily") else 2
                labels_node = kw.get("labels", kw.get("labelnames"))
                if labels_node is None and len(node.args) > pos:
                    labels_node = node.args[pos]
                labels: list[str] = []
                if labels_node is not None:
                    assert isinstance(labels_node, ast.List | ast.Tuple), f"{where}: label names must be a literal list"
                    for elt in labels_node.elts:
                        assert isinstance(elt, ast.Constant) and isinstance(elt.value, str), where
                        labels.append(elt.value)
                kind = _METRIC_CLASSES[cls]
                name = first.value
                if kind == "counter":
                    name = name.removesuffix("_total") + "_total"
                found[name] = MetricDef(kind, frozenset(labels), where)
    return found


def series(metrics: dict[str, MetricDef]) -> dict[str, frozenset[str]]:
    """Every series name a query may select, with its labels."""
    out: dict[str, frozenset[str]] = {k: frozenset(v) for k, v in PROMETHEUS_SERIES.items()}
    for name, m in metrics.items():
        if m.kind == "counter":
            out[name] = m.labels
            out[name.removesuffix("_total") + "_created"] = m.labels
        elif m.kind in ("histogram", "summary"):
            out[name] = m.labels | {"quantile"} if m.kind == "summary" else m.labels
            out[name + "_bucket"] = m.labels | {"le"}
            out[name + "_sum"] = out[name + "_count"] = m.labels
        elif m.kind == "info":
            out[name + "_info"] = m.labels
        else:
            out[name] = m.labels
    return out


def known_series() -> dict[str, frozenset[str]]:
    return series(code_metrics() | planned_metrics())


def yaml_docs(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d]


def compose() -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text(encoding="utf-8"))
    return doc


def k8s_objects() -> list[dict[str, Any]]:
    return [d for f in sorted(K8S.glob("*.yaml")) for d in yaml_docs(f) if d.get("kind") != "Kustomization"]


def by_kind(kind: str) -> list[dict[str, Any]]:
    return [o for o in k8s_objects() if o["kind"] == kind]


def pod_specs() -> Iterator[tuple[str, dict[str, Any]]]:
    for d in by_kind("Deployment"):
        yield d["metadata"]["name"], d["spec"]["template"]["spec"]


def container_env(container: dict[str, Any]) -> dict[str, str]:
    """The environment a container gets: its ConfigMaps' data, then its own ``env`` values."""
    maps = {o["metadata"]["name"]: o.get("data", {}) for o in by_kind("ConfigMap")}
    env: dict[str, str] = {}
    for src in container.get("envFrom", []):
        if "configMapRef" in src:
            env.update({k: str(v) for k, v in maps[src["configMapRef"]["name"]].items()})
    for e in container.get("env", []):
        if "value" in e:
            env[e["name"]] = str(e["value"])
    return env


def dockerfile_env() -> dict[str, str]:
    text = (DEPLOY / "Dockerfile").read_text(encoding="utf-8").replace("\\\n", " ")
    env: dict[str, str] = {}
    for line in text.splitlines():
        if line.startswith("ENV "):
            env.update(tok.split("=", 1) for tok in line[4:].split() if "=" in tok)  # type: ignore[misc]
    return env


def cli() -> Any:
    """The ``tsunagu`` command (a click group), found through the console script in pyproject.toml."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    module, attr = project["project"]["scripts"]["tsunagu"].split(":")
    return typer.main.get_command(getattr(importlib.import_module(module), attr))


def _is_group(command: Any) -> bool:
    return hasattr(command, "list_commands")


def resolve(args: list[str]) -> tuple[Any, list[str]] | str:
    """The CLI command ``args`` names, with its option arguments; or why it names none."""
    command = cli()
    rest = list(args)
    while _is_group(command) and rest and not rest[0].startswith("-"):
        sub = command.get_command(command.context_class(command), rest[0])
        if sub is None:
            return f"no command {rest[0]!r} in `tsunagu {' '.join(args)}`"
        command, rest = sub, rest[1:]
    if _is_group(command):
        return f"`tsunagu {' '.join(args)}` names a group, not a command"
    return command, rest


def options(args: list[str]) -> dict[str, str]:
    return {a: args[i + 1] for i, a in enumerate(args[:-1]) if a.startswith("--")}


# -- PromQL ------------------------------------------------------------------------------------------


@dataclass
class Query:
    selectors: list[tuple[str, set[str]]]
    grouping: set[str]


def parse_query(expr: str) -> Query:
    """Selectors (name, matcher labels) and grouping labels of a PromQL expression (Grafana variables allowed)."""
    expr = re.sub(r"\$__\w+", "5m", expr)
    expr = re.sub(r"\$\{?\w+\}?", "x", expr)
    q = Query([], set())

    def walk(e: Any) -> None:
        if isinstance(e, pql.VectorSelector):
            assert e.name, f"a selector without a metric name in {expr!r}"
            ms = e.matchers
            labels = {m.name for m in ms.matchers} | {m.name for group in ms.or_matchers for m in group}
            q.selectors.append((e.name, labels))
        elif isinstance(e, pql.MatrixSelector):
            walk(e.vector_selector)
        elif isinstance(e, pql.AggregateExpr):
            if e.modifier is not None:
                q.grouping.update(e.modifier.labels)
            walk(e.expr)
            if e.param is not None:
                walk(e.param)
        elif isinstance(e, pql.BinaryExpr):
            if e.modifier is not None:
                if e.modifier.matching is not None:
                    q.grouping.update(e.modifier.matching.labels)
                q.grouping.update(e.modifier.group_labels or [])
            walk(e.lhs)
            walk(e.rhs)
        elif isinstance(e, pql.Call):
            for a in e.args:
                walk(a)
        elif isinstance(e, pql.ParenExpr | pql.UnaryExpr | pql.SubqueryExpr):
            walk(e.expr)

    walk(pql.parse(expr))
    return q


def query_problems(where: str, expr: str, known: dict[str, frozenset[str]], label_refs: set[str]) -> list[str]:
    """What a query names that tsunagu (or Prometheus) does not have."""
    q = parse_query(expr)
    problems = []
    available: set[str] = set(TARGET_LABELS)
    for name, labels in q.selectors:
        if name not in known:
            problems.append(f"{where}: metric {name} does not exist (nor is it planned in deploy/METRICS.md)")
            continue
        available |= known[name]
        for label in labels - known[name] - TARGET_LABELS - {"__name__"}:
            problems.append(f"{where}: {name} has no label {label!r}")
    for label in (q.grouping | label_refs) - available:
        problems.append(f"{where}: label {label!r} is on none of the metrics of {expr!r}")
    return problems


def alert_rules() -> list[dict[str, Any]]:
    doc = yaml.safe_load((DEPLOY / "prometheus" / "alerts.yml").read_text(encoding="utf-8"))
    return [r for g in doc["groups"] for r in g["rules"]]


def dashboards() -> list[tuple[Path, dict[str, Any]]]:
    return [
        (p, json.loads(p.read_text(encoding="utf-8")))
        for p in sorted((DEPLOY / "grafana" / "provisioning" / "dashboards").glob("*.json"))
    ]


def dashboard_panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for p in panels:
        yield p
        yield from dashboard_panels(p.get("panels", []))


def deploy_text_files() -> Iterator[Path]:
    for p in sorted(DEPLOY.rglob("*")):
        if p.is_file() and p.suffix in {".yml", ".yaml", ".json", ".md", ".sh", ""} and "secrets" not in p.parts:
            yield p


# -- tests -------------------------------------------------------------------------------------------


def test_every_tsunagu_environment_variable_is_a_setting() -> None:
    """Every TSUNAGU_* name in deploy/ is a Settings field, or planned in SETTINGS.md (and no plan is stale)."""
    have, planned = settings_env(), planned_settings()
    named: dict[str, set[str]] = {}
    for path in deploy_text_files():
        for name in re.findall(r"\bTSUNAGU_[A-Z0-9][A-Z0-9_]*[A-Z0-9]\b", path.read_text(encoding="utf-8")):
            named.setdefault(name, set()).add(str(path.relative_to(ROOT)))
    missing = {n: sorted(w) for n, w in named.items() if n not in have and n not in planned}
    assert not missing, f"environment variables that are no setting of hub.settings.Settings: {missing}"
    stale = sorted(planned & have)
    assert not stale, f"already in hub/settings.py: delete their rows from deploy/SETTINGS.md: {stale}"
    used_outside = {n for n, w in named.items() if w - {"deploy/SETTINGS.md"}}
    unused = sorted(planned - used_outside)
    assert not unused, f"planned in deploy/SETTINGS.md but named by no deployment file: {unused}"
    # the environment the containers really get is made of settings only
    envs = [compose()["services"]["hub"]["environment"], dockerfile_env()]
    envs += [container_env(c) for _, pod in pod_specs() for c in pod["containers"]]
    envs += [o.get("stringData", {}) | o.get("data", {}) for o in by_kind("Secret")]
    for env in envs:
        assert {k for k in env if k.startswith("TSUNAGU_")} <= have | planned


def test_every_metric_in_rules_and_dashboards_exists() -> None:
    """Every metric and label the alert rules and the Grafana dashboard query is registered in the code or planned."""
    code = code_metrics()
    documented = _metric_rows("Available")
    assert documented == {
        n: MetricDef(m.kind, m.labels, documented[n].where) for n, m in code.items() if n in documented
    }, "deploy/METRICS.md 'Available' differs from the code's metrics"
    assert set(documented) == set(code), (
        f"deploy/METRICS.md 'Available' must list exactly the code's metrics: "
        f"undocumented {sorted(set(code) - set(documented))}, gone {sorted(set(documented) - set(code))}"
    )
    planned = planned_metrics()
    bad_plans = {
        n: m.kind
        for n, m in planned.items()
        if m.kind not in _METRIC_CLASSES.values() or (m.kind == "counter") != n.endswith("_total")
    }
    assert not bad_plans, f"planned metrics need a Prometheus type (counters named …_total): {bad_plans}"
    stale = sorted(n for n, m in planned.items() if n in code and code[n].labels == m.labels)
    assert not stale, f"already registered in the code: move these rows to 'Available' in deploy/METRICS.md: {stale}"

    known = known_series()
    problems: list[str] = []
    queried: set[str] = set()
    for rule in alert_rules():
        refs = set(re.findall(r"\$labels\.(\w+)", json.dumps(rule.get("annotations", {}))))
        problems += query_problems(f"alerts.yml {rule['alert']}", rule["expr"], known, refs)
        queried |= {name for name, _ in parse_query(rule["expr"]).selectors}
    for path, dash in dashboards():
        for panel in dash_panels_with_targets(dash):
            for t in panel["targets"]:
                refs = set(re.findall(r"\{\{\s*(\w+)\s*\}\}", t.get("legendFormat", "")))
                problems += query_problems(f"{path.name} {panel['title']!r}", t["expr"], known, refs)
                queried |= {name for name, _ in parse_query(t["expr"]).selectors}
        for var in dash.get("templating", {}).get("list", []):
            query = var.get("query")
            text = query.get("query", "") if isinstance(query, dict) else str(query or "")
            for metric, label in re.findall(r"label_values\((\w+)\s*,\s*(\w+)\)", text):
                if label not in known.get(metric, frozenset()):
                    problems.append(f"{path.name} variable {var['name']}: {metric} has no label {label!r}")
    assert not problems, "\n".join(problems)
    unused = sorted(n for n in planned if not series({n: planned[n]}).keys() & queried)
    assert not unused, f"planned in deploy/METRICS.md but queried by no rule or panel: {unused}"


def dash_panels_with_targets(dash: dict[str, Any]) -> Iterator[dict[str, Any]]:
    return (p for p in dashboard_panels(dash["panels"]) if p.get("targets"))


def test_alert_rules_cover_the_health_conditions() -> None:
    """Prometheus has a rule for a stalled feed, growing lag, growing outboxes and a high dead-letter rate."""
    rules = {r["alert"]: r for r in alert_rules()}
    assert set(rules) >= HEALTH_RULES
    for name, rule in rules.items():
        assert rule["labels"]["severity"] in {"warning", "critical"}, name
        assert rule["annotations"]["summary"] and rule["annotations"]["description"], name
        assert re.fullmatch(r"\d+[smh]", rule["for"]), name
    prom = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text(encoding="utf-8"))
    jobs = {j["job_name"] for j in prom["scrape_configs"]}
    monitor_jobs = {
        r["replacement"]
        for m in by_kind("PodMonitor")
        for e in m["spec"]["podMetricsEndpoints"]
        for r in e.get("relabelings", [])
        if r.get("targetLabel") == "job"
    }
    for name, rule in rules.items():
        for job in re.findall(r'job="([^"]+)"', rule["expr"]):
            assert job in jobs and job in monitor_jobs, f"{name}: job {job!r} is scraped as {jobs}/{monitor_jobs}"


def test_images_are_tsunagu_or_pinned() -> None:
    """tsunagu's images carry the project's version; every other image has a fixed tag; the build files exist."""
    version = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["version"]
    images: list[tuple[str, str]] = []
    for name, svc in compose()["services"].items():
        images.append((f"compose {name}", svc["image"]))
        if "build" in svc:
            ctx = (DEPLOY / svc["build"]["context"]).resolve()
            assert (ctx / svc["build"]["dockerfile"]).is_file(), name
            assert svc["image"].split(":")[0].rsplit("/", 1)[-1] == "tsunagu", f"compose {name} builds tsunagu"
    for dep, pod in pod_specs():
        images += [(f"k8s {dep}/{c['name']}", c["image"]) for c in pod["containers"]]
    for line in (DEPLOY / "Dockerfile").read_text(encoding="utf-8").splitlines():
        if line.startswith("FROM "):
            images.append(("Dockerfile", line.split()[1]))
    for where, image in images:
        repo, _, tag = image.rpartition(":")
        assert repo and "/" not in tag and tag and tag != "latest", f"{where}: {image} has no fixed tag"
        if repo.rsplit("/", 1)[-1] == "tsunagu":
            assert tag == version, f"{where}: {image} is not tsunagu {version}"
        if repo == "python":
            minor = tuple(int(x) for x in tag.split("-")[0].split(".")[:2])
            assert minor >= (3, 11), f"{where}: tsunagu needs Python 3.11 or later"


def test_commands_exist() -> None:
    """Every tsunagu command the image, compose and Kubernetes run is a real CLI command with real options."""
    runs: list[tuple[str, list[str]]] = [("compose hub", compose()["services"]["hub"]["command"])]
    df = (DEPLOY / "Dockerfile").read_text(encoding="utf-8")
    runs.append(("Dockerfile CMD", json.loads(re.search(r"^CMD (.+)$", df, re.M).group(1))))  # type: ignore[union-attr]
    assert json.loads(re.search(r"^ENTRYPOINT (.+)$", df, re.M).group(1)) == ["tsunagu"]  # type: ignore[union-attr]
    for dep, pod in pod_specs():
        runs += [(f"k8s {dep}/{c['name']}", c["args"]) for c in pod["containers"]]
    for where, args in runs:
        found = resolve(args)
        assert not isinstance(found, str), f"{where}: {found}"
        command, rest = found
        opts = {o for p in command.params for o in p.opts}
        unknown = [a for a in rest if a.startswith("--") and a not in opts]
        assert not unknown, f"{where}: `tsunagu {' '.join(args)}` has no option {unknown}"


def _port(value: str | int) -> int:
    return int(str(value).rsplit(":", 1)[-1])


def test_compose_ports_and_volumes_exist() -> None:
    """Compose publishes only on 127.0.0.1, the ports the settings name; every mount has its source and target."""
    doc = compose()
    header = (DEPLOY / "docker-compose.yml").read_text(encoding="utf-8").split("\nname:")[0]
    made = {d for m in re.findall(r"mkdir -p ([^&\n]+)", header) for d in m.split()}
    svcs = doc["services"]
    for name, svc in svcs.items():
        for p in svc.get("ports", []):
            assert str(p).startswith("127.0.0.1:"), f"compose {name}: {p} is published beyond this host"
        for v in svc.get("volumes", []):
            src, target = v.split(":")[:2]
            if src.startswith("."):
                rel = PurePosixPath(src)
                assert (DEPLOY / rel).exists() or rel.parts[1 if rel.parts[0] == "." else 0] in made, (
                    f"compose {name}: {src} neither exists nor is made by the set-up lines"
                )
            else:
                assert src in doc["volumes"], f"compose {name}: volume {src} is not declared"
    used = {v.split(":")[0] for s in svcs.values() for v in s.get("volumes", [])}
    assert set(doc["volumes"]) <= used, "declared volumes nobody mounts"

    def mounts(service: str) -> dict[str, str]:
        return {v.split(":")[1]: v.split(":")[0] for v in svcs[service].get("volumes", [])}

    def host_path(service: str, path: str) -> str:
        for target, src in mounts(service).items():
            if path == target or path.startswith(target.rstrip("/") + "/"):
                return src + path[len(target) :]
        raise AssertionError(f"compose {service}: {path} is on no mounted volume")

    hub = svcs["hub"]
    env = hub["environment"]
    webhook, staff = int(env["TSUNAGU_WEBHOOK_PORT"]), int(env["TSUNAGU_STAFF_PORT"])
    assert webhook != staff
    assert {_port(p) for p in hub["ports"]} == {webhook, staff}
    assert f"127.0.0.1:{staff}/healthz" in " ".join(hub["healthcheck"]["test"])
    opts = options(hub["command"])
    host_path("hub", opts["--sources"])
    host_path("hub", opts["--state"])

    assert "command" not in svcs["prometheus"]  # the image's default: /etc/prometheus/prometheus.yml
    prom = yaml.safe_load((DEPLOY / host_path("prometheus", "/etc/prometheus/prometheus.yml")).read_text())
    for rule_file in prom["rule_files"]:
        assert (DEPLOY / host_path("prometheus", rule_file)).is_file(), rule_file
    for job in prom["scrape_configs"]:
        host_path("prometheus", job["authorization"]["credentials_file"])
        for target in (t for sc in job["static_configs"] for t in sc["targets"]):
            host, port = target.split(":")
            assert host == "hub" and int(port) == staff, f"Prometheus scrapes {target}, the staff port is {staff}"
    prom_port = {_port(p) for p in svcs["prometheus"]["ports"]}

    grafana_dir = DEPLOY / host_path("grafana", "/etc/grafana/provisioning")
    for ds in yaml.safe_load((grafana_dir / "datasources" / "prometheus.yml").read_text())["datasources"]:
        m = re.fullmatch(r"http://([\w-]+):(\d+)", ds["url"])
        assert m and m.group(1) in svcs and int(m.group(2)) in prom_port, ds["url"]
    uids = {
        ds["uid"] for ds in yaml.safe_load((grafana_dir / "datasources" / "prometheus.yml").read_text())["datasources"]
    }
    for provider in yaml.safe_load((grafana_dir / "dashboards" / "tsunagu.yml").read_text())["providers"]:
        folder = DEPLOY / host_path("grafana", provider["options"]["path"])
        assert list(folder.glob("*.json")), f"no dashboard JSON in {folder}"
    for path, dash in dashboards():
        for panel in dash_panels_with_targets(dash):
            assert panel["datasource"]["uid"] in uids, f"{path.name} {panel['title']}: unknown datasource"

    df_env = dockerfile_env()
    exposed = {int(p) for p in re.findall(r"^EXPOSE (.+)$", (DEPLOY / "Dockerfile").read_text(), re.M)[0].split()}
    assert exposed == {int(df_env["TSUNAGU_WEBHOOK_PORT"]), int(df_env["TSUNAGU_STAFF_PORT"])}


def test_kubernetes_ports_services_and_volumes_exist() -> None:
    """Containers listen where their settings say; only the webhook is public; every mount and reference resolves."""
    secrets = {o["metadata"]["name"]: set(o.get("stringData", {})) | set(o.get("data", {})) for o in by_kind("Secret")}
    kafka_users = {u["metadata"]["name"] for u in by_kind("KafkaUser")}
    strimzi_secrets = {f"{k['metadata']['name']}-cluster-ca-cert" for k in by_kind("Kafka")}
    maps = {o["metadata"]["name"] for o in by_kind("ConfigMap")}
    claims = {o["metadata"]["name"] for o in by_kind("PersistentVolumeClaim")} | EXTERNAL_CLAIMS
    port_names: dict[str, dict[str, int]] = {}  # deployment → port name → number
    pod_labels = {d["metadata"]["name"]: d["spec"]["template"]["metadata"]["labels"] for d in by_kind("Deployment")}
    for dep, pod in pod_specs():
        volumes = {v["name"]: v for v in pod["volumes"]}
        staff_ports: list[int] = []
        names: dict[str, int] = {}
        for c in pod["containers"]:
            where = f"{dep}/{c['name']}"
            env = container_env(c)
            ports = {p["name"]: p["containerPort"] for p in c.get("ports", [])}
            names |= ports
            staff = int(env["TSUNAGU_STAFF_PORT"])
            staff_ports.append(staff)
            assert [n for n, p in ports.items() if p == staff and n.startswith("staff")], f"{where}: staff port"
            if c["args"][0] == "serve":
                webhook = int(env["TSUNAGU_WEBHOOK_PORT"])
                assert ports.get("webhook") == webhook != staff, f"{where}: webhook port"
            for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
                if probe in c:
                    assert c[probe]["httpGet"]["port"] in ports, f"{where}: {probe} on an unknown port"
                    assert ports[c[probe]["httpGet"]["port"]] == staff, f"{where}: probes belong on the staff port"
            mounts = {m["mountPath"]: m["name"] for m in c.get("volumeMounts", [])}
            assert set(mounts.values()) <= set(volumes), f"{where}: mounts an undefined volume"

            def volume_at(path: str, where: str = where, mounts: dict[str, str] = mounts) -> str:
                for target, name in mounts.items():
                    if path == target or path.startswith(target.rstrip("/") + "/"):
                        return name
                raise AssertionError(f"{where}: {path} is on no mounted volume")

            opts = options(c["args"])
            for opt in ("--sources", "--state"):
                if opt in opts and opts[opt] != "/srv/no-feeds":  # the image's empty folder (Dockerfile)
                    volume_at(opts[opt])
            cafile = env["TSUNAGU_KAFKA_SSL_CAFILE"]
            ca_volume = volumes[volume_at(cafile)]
            assert ca_volume["secret"]["secretName"] in strimzi_secrets, f"{where}: CA not from Strimzi"
            assert any(
                i["path"] == PurePosixPath(cafile).name and i["key"] == "ca.crt" for i in ca_volume["secret"]["items"]
            ), f"{where}: {cafile} is not the cluster CA's ca.crt"
            for src in c.get("envFrom", []):
                if "configMapRef" in src:
                    assert src["configMapRef"]["name"] in maps
                if "secretRef" in src:
                    assert src["secretRef"]["name"] in secrets
            for e in c.get("env", []):
                ref = e.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    ok = ref["key"] in secrets.get(ref["name"], set()) or (
                        ref["name"] in kafka_users and ref["key"] == "password"
                    )
                    assert ok, f"{where}: secret {ref['name']}/{ref['key']} is made by nothing here"
        assert len(staff_ports) == len(set(staff_ports)), f"{dep}: containers share the pod's network"
        for v in volumes.values():
            if "secret" in v:
                assert v["secret"]["secretName"] in set(secrets) | strimzi_secrets
            if "persistentVolumeClaim" in v:
                assert v["persistentVolumeClaim"]["claimName"] in claims
            if "configMap" in v:
                assert v["configMap"]["name"] in maps
        port_names[dep] = names

    def targets(selector: dict[str, str]) -> list[str]:
        return [d for d, labels in pod_labels.items() if selector.items() <= labels.items()]

    service_ports: dict[str, set[str]] = {}
    for svc in by_kind("Service"):
        name = svc["metadata"]["name"]
        assert svc["spec"].get("type", "ClusterIP") == "ClusterIP", f"Service {name}: exposed beyond the cluster"
        deps = targets(svc["spec"]["selector"])
        assert deps, f"Service {name} selects no pod"
        service_ports[name] = set()
        for p in svc["spec"]["ports"]:
            for d in deps:
                assert p["targetPort"] in port_names[d], f"Service {name}: no port {p['targetPort']} in {d}"
            service_ports[name].add(p["targetPort"])
    public = set()
    for ing in by_kind("Ingress"):
        for rule in ing["spec"]["rules"]:
            for path in rule["http"]["paths"]:
                assert path["path"].startswith("/webhooks/"), f"Ingress {ing['metadata']['name']}: {path['path']}"
                public.add(path["backend"]["service"]["name"])
        assert ing["spec"]["tls"], "the webhook is served over TLS only"
    assert public and all(service_ports[s] == {"webhook"} for s in public), "only the webhook port may be public"
    assert any(ports == {"staff"} for ports in service_ports.values()), "an internal Service for the staff pages"
    for pol in by_kind("NetworkPolicy"):
        deps = targets(pol["spec"]["podSelector"]["matchLabels"])
        for rule in pol["spec"]["ingress"]:
            for p in rule.get("ports", []):
                assert all(p["port"] in port_names[d] for d in deps), f"NetworkPolicy {pol['metadata']['name']}"
    scraped = {e["port"] for m in by_kind("PodMonitor") for e in m["spec"]["podMetricsEndpoints"]}
    staff_names = {n for names in port_names.values() for n in names if n.startswith("staff")}
    assert scraped == staff_names, f"scraped {sorted(scraped)}, staff ports {sorted(staff_names)}"
    for m in by_kind("PodMonitor"):
        for e in m["spec"]["podMetricsEndpoints"]:
            cred = e["authorization"]["credentials"]
            assert cred["key"] in secrets[cred["name"]] and cred["key"] == "TSUNAGU_METRICS_TOKEN"


def test_strimzi_kafka_is_replicated_and_authenticated() -> None:
    """Strimzi's Kafka: KRaft, replication 3, min ISR 2, TLS with SCRAM; tsunagu's settings point at it."""
    (kafka,) = by_kind("Kafka")
    name = kafka["metadata"]["name"]
    assert kafka["metadata"]["annotations"] == {"strimzi.io/node-pools": "enabled", "strimzi.io/kraft": "enabled"}
    config = kafka["spec"]["kafka"]["config"]
    assert config["default.replication.factor"] == 3 and config["min.insync.replicas"] == 2
    assert config["offsets.topic.replication.factor"] == 3 and config["auto.create.topics.enable"] is False
    pools = [p for p in by_kind("KafkaNodePool") if p["metadata"]["labels"]["strimzi.io/cluster"] == name]
    assert sum(p["spec"]["replicas"] for p in pools if "broker" in p["spec"]["roles"]) >= 3
    assert sum(p["spec"]["replicas"] for p in pools if "controller" in p["spec"]["roles"]) >= 3
    (listener,) = [li for li in kafka["spec"]["kafka"]["listeners"] if li["tls"]]
    assert listener["authentication"]["type"] == "scram-sha-512"
    (user,) = by_kind("KafkaUser")
    assert user["metadata"]["labels"]["strimzi.io/cluster"] == name
    assert user["spec"]["authentication"]["type"] == "scram-sha-512"
    (config_map,) = by_kind("ConfigMap")
    env = config_map["data"]
    assert env["TSUNAGU_KAFKA_BOOTSTRAP"] == f"{name}-kafka-bootstrap:{listener['port']}"
    assert env["TSUNAGU_KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL"
    assert env["TSUNAGU_KAFKA_SASL_MECHANISM"] == "SCRAM-SHA-512"
    assert env["TSUNAGU_KAFKA_SASL_USERNAME"] == user["metadata"]["name"]
    assert int(env["TSUNAGU_REPLICATION_FACTOR"]) == config["default.replication.factor"]
    acls = {a["resource"]["type"]: a["resource"] for a in user["spec"]["authorization"]["acls"]}
    assert acls["topic"] == {"type": "topic", "name": env["TSUNAGU_TOPIC_PREFIX"] + ".", "patternType": "prefix"}
    assert acls["group"]["name"] == env["TSUNAGU_HUB_GROUP"] and acls["group"]["patternType"] == "prefix"
    for dep, pod in pod_specs():
        for c in pod["containers"]:
            refs = [
                e["valueFrom"]["secretKeyRef"] for e in c.get("env", []) if e["name"] == "TSUNAGU_KAFKA_SASL_PASSWORD"
            ]
            assert refs == [{"name": user["metadata"]["name"], "key": "password"}], f"{dep}/{c['name']}"
    kustomized = yaml.safe_load((K8S / "kustomization.yaml").read_text())["resources"]
    assert set(kustomized) == {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml", "secret.yaml"}


def test_planned_settings_and_metrics_are_wired() -> None:
    """The coordinator's todo: deploy/SETTINGS.md and deploy/METRICS.md list nothing still planned."""
    todo_settings, todo_metrics = sorted(planned_settings()), sorted(planned_metrics())
    assert not todo_settings and not todo_metrics, (
        "INTENDED TO FAIL UNTIL WIRED — the deployment files use settings and metrics tsunagu does not have "
        f"yet. Add to hub/settings.py and delete from deploy/SETTINGS.md: {todo_settings}; register in the "
        f"code and move to 'Available' in deploy/METRICS.md: {todo_metrics}"
    )
