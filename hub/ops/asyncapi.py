"""The AsyncAPI document of every topic tsunagu publishes or consumes, with the committed JSON Schemas.

FastStream generates the base from the hub's broker (its consumers: intake, resolved, dead letters);
this adds the topics the connectors, the consent API and the hub publish, each message as a
CloudEvent (structured mode, ``content-type: application/cloudevents+json; charset=UTF-8``) whose
``data`` is one of the event versions committed under ``schemas/jsonschema/``.
"""

from __future__ import annotations

import copy
import json
import re
from types import SimpleNamespace
from typing import Any

from connectors.runner import CONTENT_TYPE
from hub.kafka.service import HubService
from hub.settings import Settings
from hub.topics import Topics
from schemas.compat import committed_schemas
from schemas.envelope import CloudEvent

CASES = ["jp.tsunagu.case.opened.v1", "jp.tsunagu.case.updated.v1", "jp.tsunagu.case.closed.v1"]
INTAKE_TYPES = ["jp.tsunagu.resident.observed.v1", "jp.tsunagu.person.observed.v1", *CASES,
                "jp.tsunagu.referral.requested.v1", "jp.tsunagu.consent.recorded.v1",
                "jp.tsunagu.consent.withdrawn.v1"]


def topic_types(topics: Topics) -> dict[str, tuple[str, list[str], str]]:
    """topic → (who publishes, event types, what it is for)."""
    return {
        topics.intake: ("connectors, webhook, consent API", INTAKE_TYPES, "agency feeds → hub, keyed by record key"),
        topics.resolved: ("hub (intake stage)", INTAKE_TYPES, "hub stage 1 → 2, keyed by household"),
        topics.team: ("hub", [*CASES, "jp.tsunagu.referral.requested.v1", "jp.tsunagu.person.observed.v1",
                              "jp.tsunagu.team.withdrawal.v1"], "consented events for the multi-agency team"),
        topics.support_meeting: ("hub", ["jp.tsunagu.support_meeting.case.v1"], "minimal form for 支援会議"),
        topics.alerts: ("hub", ["jp.tsunagu.alert.raised.v1", "jp.tsunagu.alert.updated.v1"], "cross-field alerts"),
        topics.deadletter: ("connectors, webhook, hub", ["jp.tsunagu.deadletter.v1"], "dead letters of every stage"),
    }


def _key(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", name)


def _lift(schema: dict[str, Any], prefix: str, into: dict[str, Any]) -> dict[str, Any]:
    """Move a schema's ``$defs`` into components (prefixed) and point its refs there."""
    schema = copy.deepcopy(schema)
    defs = schema.pop("$defs", {})
    names = {n: _key(f"{prefix}.{n}") for n in defs}

    def fix(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                node = {**node, "$ref": f"#/components/schemas/{names[ref.removeprefix('#/$defs/')]}"}
            return {k: fix(v) for k, v in node.items()}
        if isinstance(node, list):
            return [fix(v) for v in node]
        return node

    for n, d in defs.items():
        into[names[n]] = fix(d)
    return fix(schema)  # type: ignore[no-any-return]


def _message(name: str, summary: str, types: list[str]) -> dict[str, Any]:
    """A message: a CloudEvent (structured mode) whose type is one of ``types``."""
    refs = [{"$ref": f"#/components/schemas/{_key(t)}.event"} for t in types]
    return {"name": _key(name), "title": name, "summary": summary, "contentType": CONTENT_TYPE,
            "headers": {"type": "object", "properties": {"content-type": {"type": "string", "const": CONTENT_TYPE}}},
            "payload": refs[0] if len(refs) == 1 else {"oneOf": refs}}


def document(settings: Settings | None = None) -> dict[str, Any]:
    """The whole AsyncAPI 2.6 document (a JSON-able dict)."""
    from faststream.specification import AsyncAPI

    settings = settings or Settings()
    core = SimpleNamespace(process_intake=lambda _b: None, process_household=lambda _b: None, sessions=None)
    service = HubService(core, settings, settings.kafka_bootstrap or "localhost:9092")  # type: ignore[arg-type]
    base = AsyncAPI(service.broker, title="tsunagu", version="1", schema_version="2.6.0",
                    description="tsunagu's Kafka topics; every message is a CloudEvent in structured mode"
                    ).to_specification().to_jsonable()
    doc: dict[str, Any] = json.loads(json.dumps(base))
    components = doc.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    messages = components.setdefault("messages", {})
    committed = committed_schemas()
    envelope = _lift(CloudEvent.model_json_schema(), "CloudEvent", schemas)
    envelope["properties"]["data"] = {"description": "the event version's payload (see the message)"}
    schemas["CloudEvent"] = envelope
    for etype, schema in sorted(committed.items()):
        data = _lift(schema, etype, schemas)
        schemas[_key(etype)] = data
        schemas[_key(etype) + ".event"] = {"allOf": [{"$ref": "#/components/schemas/CloudEvent"}, {
            "type": "object", "properties": {"type": {"const": etype},
                                             "data": {"$ref": f"#/components/schemas/{_key(etype)}"}}}]}
        messages[_key(etype)] = _message(etype, schema.get("description", etype), [etype])
    topics = Topics(settings.topic_prefix)
    consumed = {ch.get("bindings", {}).get("kafka", {}).get("topic"): name for name, ch in doc["channels"].items()}
    for topic, (publisher, types, purpose) in topic_types(topics).items():
        if len(types) == 1:
            message = {"$ref": f"#/components/messages/{_key(types[0])}"}
        else:
            messages[_key(topic)] = _message(topic, purpose, types)
            message = {"$ref": f"#/components/messages/{_key(topic)}"}
        channel = doc["channels"].get(consumed.get(topic, ""), None)
        if channel is None:
            channel = doc["channels"].setdefault(topic, {"servers": list(doc.get("servers", {})),
                                                         "bindings": {"kafka": {"topic": topic,
                                                                                "bindingVersion": "0.4.0"}}})
        channel["description"] = f"{purpose}; published by {publisher}"
        channel["subscribe"] = {"summary": f"published by {publisher}", "message": message}
        if "publish" in channel:  # consumed by the hub: what it receives is the same CloudEvents
            old = channel["publish"]["message"]["$ref"].removeprefix("#/components/messages/")
            messages.pop(old, None)
            channel["publish"]["message"] = message
    # FastStream's placeholder for untyped batches is no longer referenced
    schemas.pop("EmptyPayload", None)
    return doc


def problems(doc: dict[str, Any]) -> list[str]:
    """What keeps ``doc`` from being a valid AsyncAPI 2.6 document: FastStream's schema model, resolvable
    ``$ref``s, and every committed event version present."""
    from faststream.specification.asyncapi.v2_6_0.schema import ApplicationSchema
    from pydantic import ValidationError

    out: list[str] = []
    if doc.get("asyncapi") != "2.6.0":
        out.append(f"asyncapi version is {doc.get('asyncapi')!r}, expected '2.6.0'")
    try:
        ApplicationSchema.model_validate(doc)
    except ValidationError as exc:
        out += [f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()[:20]]

    def walk(node: Any, path: str) -> None:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str):
                target: Any = doc
                for part in ref.removeprefix("#/").split("/"):
                    target = target.get(part) if isinstance(target, dict) else None
                if target is None:
                    out.append(f"{path}: unresolved $ref {ref}")
            for k, v in node.items():
                walk(v, f"{path}/{k}")
        elif isinstance(node, list):
            for i, v in enumerate(node):
                walk(v, f"{path}/{i}")

    walk(doc, "#")
    missing = [t for t in committed_schemas() if _key(t) not in doc.get("components", {}).get("messages", {})]
    out += [f"event version {t} has no message" for t in missing]
    return out
