"""`tsunagu asyncapi`, `tsunagu config check` and `tsunagu status --json`: documents and messages IT staff rely on."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import jsonschema
from sqlalchemy import select
from typer.testing import CliRunner

from connectors.runner import dead_letter_event
from hub.bootstrap import Database
from hub.cli.main import app
from hub.ops.asyncapi import document, problems
from hub.ops.deadletters import DeadLetterAccess, DeadLetterRow, record_messages
from hub.topics import Topics
from schemas.compat import committed_schemas
from schemas.deadletter import DeadLetter

GOOD_ENV = {"TSUNAGU_KODOMO_WEBHOOK_SECRET": "a-real-secret-value", "TSUNAGU_API_TOKENS": "{}",
            "TSUNAGU_DEADLETTER_KEY": "", "TSUNAGU_KAFKA_BOOTSTRAP": "", "TSUNAGU_DATABASE_URL": ""}


def test_asyncapi_covers_every_topic_and_event_version() -> None:
    """Every topic is a channel, every committed event version a message, and the document validates."""
    doc = document()
    assert problems(doc) == []
    channel_topics = {ch["bindings"]["kafka"]["topic"] for ch in doc["channels"].values()}
    assert channel_topics == set(Topics().all())
    for ch in doc["channels"].values():
        assert "subscribe" in ch  # every topic is published by tsunagu
    messages = doc["components"]["messages"]
    assert set(committed_schemas()) <= set(messages)
    assert all(m["contentType"] == "application/cloudevents+json; charset=UTF-8" for m in messages.values())
    out = CliRunner().invoke(app, ["asyncapi"])
    assert out.exit_code == 0 and json.loads(out.output)["asyncapi"] == "2.6.0"


def test_asyncapi_check_finds_a_broken_reference() -> None:
    """A dangling $ref is reported (the check can fail)."""
    doc = document()
    doc["components"]["messages"]["jp.tsunagu.deadletter.v1"]["payload"] = {"$ref": "#/components/schemas/Nope"}
    assert any("unresolved $ref #/components/schemas/Nope" in p for p in problems(doc))


def test_a_dead_letter_message_validates_against_its_committed_schema() -> None:
    """The data of a published dead letter is valid under schemas/jsonschema/jp.tsunagu.deadletter.v1.json."""
    value = dead_letter_event(DeadLetter(source="jiritsu", where="J.csv:4", reason="missing 氏名"), stage="connector",
                              scope="J.csv", position="00000004")
    event = json.loads(value)
    jsonschema.validate(event["data"], committed_schemas()["jp.tsunagu.deadletter.v1"])
    assert event["data"]["reason"] == "missing"


def test_config_check_names_each_problem_and_exits_1(tmp_path: Path) -> None:
    """SASL without credentials, an empty webhook secret, a short token with an unknown role and a bad key."""
    env = {**GOOD_ENV, "TSUNAGU_KAFKA_BOOTSTRAP": "127.0.0.1:1", "TSUNAGU_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
           "TSUNAGU_KODOMO_WEBHOOK_SECRET": "", "TSUNAGU_API_TOKENS": '{"short": "root"}',
           "TSUNAGU_DEADLETTER_KEY": "not-a-key"}
    out = CliRunner().invoke(app, ["config", "check"], env=env)
    assert out.exit_code == 1
    text = out.output
    for expected in ("TSUNAGU_KAFKA_SASL_MECHANISM is required with TSUNAGU_KAFKA_SECURITY_PROTOCOL=SASL_SSL",
                     "Kafka brokers 127.0.0.1:1 not reachable", "TSUNAGU_KODOMO_WEBHOOK_SECRET is empty",
                     "token #1 (role root) is shorter than 16", "unknown role 'root'",
                     "TSUNAGU_DEADLETTER_KEY is not a Fernet key"):
        assert expected in text, (expected, text)
    assert "short" not in text.replace("shorter", "")  # the token itself is never printed


def test_config_check_unmigrated_database_and_bad_setting(tmp_path: Path) -> None:
    """An empty database is 'not migrated' (exit 1); a malformed setting is named by its variable."""
    url = f"sqlite:///{tmp_path / 'empty.sqlite'}"
    out = CliRunner().invoke(app, ["config", "check", "--database", url], env=GOOD_ENV)
    assert out.exit_code == 1 and "database not migrated: at revision none" in out.output
    Database.open(url).close()
    ok = CliRunner().invoke(app, ["config", "check", "--database", url], env=GOOD_ENV)
    assert ok.exit_code == 0 and "configuration OK" in ok.output, ok.output
    bad = CliRunner().invoke(app, ["config", "check"], env={**GOOD_ENV, "TSUNAGU_PARTITIONS": "0"})
    assert bad.exit_code == 1 and "TSUNAGU_PARTITIONS" in bad.output


def test_status_json_from_a_state_folder(tmp_path: Path) -> None:
    """`status --state --json` is one JSON object with dead_letters_total from the store, no record keys."""
    state = tmp_path / "state"
    state.mkdir()
    db = Database.open(f"sqlite:///{state / 'hub.sqlite'}")
    letter = DeadLetter(source="houkatsu", where="C01.csv:7", record="houkatsu:C01-1", reason="invalid date",
                        at=datetime.now(UTC))
    record_messages(db.sessions, [(dead_letter_event(letter, stage="connector", scope="C01.csv",
                                                     position="00000007"), None, None, None)])
    db.close()
    out = CliRunner().invoke(app, ["status", "--state", str(state), "--json"], env=GOOD_ENV)
    assert out.exit_code == 0, out.output
    doc = json.loads(out.output)
    assert doc["dead_letters_total"] == 1
    assert doc["dead_letters_by_reason"][0]["reason"] == "date"
    assert "houkatsu:C01-1" not in out.output
    screen = CliRunner().invoke(app, ["status", "--state", str(state)], env=GOOD_ENV)
    assert screen.exit_code == 0 and "dead letters: 1" in screen.output


def test_hub_replay_without_a_broker_setting_is_refused_and_keeps_the_dead_letter(tmp_path: Path) -> None:
    """On the embedded default, a replay would go to a throwaway broker no hub reads: refused, nothing changes."""
    state = tmp_path / "state"
    state.mkdir()
    db = Database.open(f"sqlite:///{state / 'hub.sqlite'}")
    letter = DeadLetter(source="houkatsu", where="demo.intake.v1:0:5", reason="unknown event type", stage="hub.intake",
                        event="ev-1", at=datetime.now(UTC))
    record_messages(db.sessions, [(dead_letter_event(letter, stage="hub", topic="demo.intake.v1", partition=0,
                                                     offset=5), None, None, None)])
    with db.sessions() as s:
        [row] = s.scalars(select(DeadLetterRow)).all()
        ident = row.id
    out = CliRunner().invoke(app, ["deadletter", "replay", ident, "--database", f"sqlite:///{state / 'hub.sqlite'}"],
                             env=GOOD_ENV)
    assert out.exit_code == 2, out.output
    assert "TSUNAGU_KAFKA_BOOTSTRAP" in out.output
    with db.sessions() as s:
        after = s.get(DeadLetterRow, ident)
        audited = s.scalars(select(DeadLetterAccess)).all()
    db.close()
    assert after is not None and after.state == "open" and audited == []
