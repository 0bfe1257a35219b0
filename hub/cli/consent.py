"""``tsunagu audit`` and ``tsunagu consent``: the audit trail's check, 開示請求, and the consent registry.

``tsunagu audit verify`` recomputes the hash chain (:func:`consent.audit.verify`) of an exported
``audit.jsonl`` (``--file``) or of the hub's database (``--database URL`` / ``--state DIR``; there it
is also checked against the stored head, so entries cut from the end show too). It prints
``ok N entries`` and exits 0, or the first broken line and what is wrong with it and exits 1.
An export can be checked against a head noted elsewhere with ``--expected-head``.

``tsunagu consent disclosures --resident-no N`` answers a resident's 開示請求: which events about
them went where (route and recipient), when and on which basis, as JSON lines, from the audit
trail of every hub person that resident is (identity tables, merged persons included). It prints
ids, record keys, codes and times; never names or case content.

``tsunagu consent record|withdraw|list|designate`` are front-ends over the same service functions
as the consent API (:mod:`hub.http.consent`). A recorded or withdrawn consent goes to the hub as a
CloudEvent on the intake topic: straight to Kafka when a broker is configured (``--bootstrap`` or
``TSUNAGU_KAFKA_BOOTSTRAP``), otherwise through the hub's outbox, which the hub service relays when
it (re)starts.

The database: ``--database URL``, else ``TSUNAGU_DATABASE_URL``, else ``<state>/hub.sqlite`` of a
batch run's ``--state`` folder (:func:`hub.migrate.database_url_for`). Usage errors exit 2.

Register in hub/cli.py::

    app.add_typer(audit_app, name="audit")
    app.add_typer(consent_app, name="consent")
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from hub.cli.common import _fail, database_url, topic_prefix
from hub.settings import get_settings

if TYPE_CHECKING:
    from hub.bootstrap import Database

audit_app = typer.Typer(no_args_is_help=True, add_completion=False, help="The audit trail: verify its hash chain.")
consent_app = typer.Typer(no_args_is_help=True, add_completion=False,
                          help="Consent registry: record, withdraw, list, designate; 開示請求 (disclosures).")

StateOpt = Annotated[Path | None, typer.Option("--state", help="state folder of a batch run (<state>/hub.sqlite)")]
DatabaseOpt = Annotated[str | None, typer.Option("--database", help="SQLAlchemy URL of the hub's database")]
ResidentOpt = Annotated[str, typer.Option("--resident-no", help="宛名番号 (10 digits)")]
BootstrapOpt = Annotated[str | None, typer.Option("--bootstrap", help="Kafka bootstrap servers (else the outbox)")]
PrefixOpt = Annotated[str | None, typer.Option("--topic-prefix", help="topic prefix of the deployment")]



@audit_app.callback()
def _audit_group() -> None:
    """The audit trail (a group even with one command, so `tsunagu audit verify` keeps its shape)."""


RECIPIENTS = {"team": "重層的支援会議", "emergency": "重層的支援会議", "support_meeting": "支援会議"}


def _database(url: str) -> Database:
    from hub.bootstrap import Database

    return Database.open(url, migrate=False)


async def _never(_event: Any) -> None:
    """The publisher of commands that publish nothing."""
    raise RuntimeError("this command publishes nothing")


def _line(row: dict[str, Any]) -> str:
    return json.dumps(row, ensure_ascii=False)


# --------------------------------------------------------------------------- tsunagu audit verify
def _file_lines(path: Path) -> Iterator[Any]:
    """One item per line of the file: the parsed object, or None for a line that is not JSON."""
    from consent.audit import no_duplicate_keys

    with path.open("rb") as f:
        for raw in f:
            try:  # a key given twice (two `decision`s) is refused, not resolved by "the last one wins"
                yield json.loads(raw.decode("utf-8"), object_pairs_hook=no_duplicate_keys)
            except (UnicodeDecodeError, ValueError):
                yield None


@audit_app.command("verify")
def verify(
    file: Annotated[Path | None, typer.Option("--file", help="an exported audit.jsonl")] = None,
    state: StateOpt = None,
    database: DatabaseOpt = None,
    expected_head: Annotated[str | None, typer.Option("--expected-head", help="the chain's known last hash")] = None,
    anchor: Annotated[Path | None, typer.Option(
        "--anchor", help="the append-only anchor file [TSUNAGU_AUDIT_ANCHOR_PATH, else <state>/audit.anchor]")] = None,
) -> None:
    """Recompute the audit trail's hash chain (HMAC with TSUNAGU_AUDIT_HMAC_KEY when set) and check it against
    the anchors: `ok N entries …` (exit 0) or the first broken line (exit 1)."""
    from consent.anchor import AnchorError, read_anchors
    from consent.audit import verify as verify_chain
    from hub.anchoring import anchor_path, audit_key_of

    settings = get_settings()
    key = audit_key_of(settings)
    if anchor is None and settings.audit_anchor_path is not None:
        anchor = settings.audit_anchor_path
    if anchor is None and state is not None and anchor_path(settings, state).exists():
        anchor = anchor_path(settings, state)
    anchors: dict[int, str] = {}
    if anchor is not None:
        try:
            anchors = {a.entries: a.head for a in read_anchors(anchor, key)}
        except FileNotFoundError:
            _fail(f"anchor file not found: {anchor}", 1)
        except OSError as exc:
            _fail(f"cannot read {anchor} ({type(exc).__name__})", 1)
        except AnchorError as exc:
            _fail(f"anchor file {anchor}: {exc}", 1)

    if file is not None:
        if state is not None or database:
            _fail("give --file, or --state / --database, not both")
        try:
            result = verify_chain(_file_lines(file), expected_head=expected_head, key=key, anchors=anchors)
        except OSError as exc:
            _fail(f"cannot read {file} ({type(exc).__name__})")
            return
        where = "line"
    else:
        from consent.store import audit_head, iter_audit

        db = _database(database_url(state, database, get_settings()))
        sessions = db.sessions
        try:
            with sessions() as s:
                head = audit_head(s)
                if expected_head is not None and expected_head != head:
                    _fail("the stored head differs from --expected-head", 1)
                result = verify_chain((e.to_json() for e in iter_audit(s)), expected_head=head, key=key,
                                      anchors=anchors)
        except SQLAlchemyError as exc:
            _fail(f"cannot read the audit trail ({type(exc).__name__}); is the database migrated?")
            return
        finally:
            db.close()
        where = "entry"
    if result.ok:
        if not key:
            how = "unsigned: TSUNAGU_AUDIT_HMAC_KEY is not set"
        elif result.unkeyed:
            how = f"signed; the first {result.unkeyed} entries are unsigned (written before the key was set)"
        else:
            how = "signed"
        where_anchor = (f"{result.anchored} anchors" if anchor is not None
                        else "no anchor file: a cut tail is undetected")
        typer.echo(f"ok {result.checked} entries ({how}; {where_anchor})")
        return
    typer.echo(f"broken at {where} {result.first_broken}: {result.problem} ({result.checked} entries ok before it)")
    raise typer.Exit(1)


# --------------------------------------------------------------------------- tsunagu consent disclosures
def disclosure_rows(s: Session, resident_no: str) -> list[dict[str, Any]]:
    """開示請求: every permitted flow of this resident's information (no case content)."""
    from consent.store import disclosures
    from hub.http.consent.queries import persons_of_resident

    return [
        {"event": e.event, "sourcerecord": e.sourcerecord, "field": e.field, "route": e.route,
         "recipient": RECIPIENTS.get(e.route or ""), "basis": e.basis, "at": e.at}
        for e in disclosures(s, persons_of_resident(s, resident_no))
    ]


def _resident_no(value: str) -> str:
    if not (len(value) == 10 and value.isascii() and value.isdigit()):
        _fail("--resident-no is a 10-digit 宛名番号")
    return value


@consent_app.command("disclosures")
def disclosures_cmd(resident_no: ResidentOpt, state: StateOpt = None, database: DatabaseOpt = None) -> None:
    """開示請求: which events about the resident went where, when and on which basis (JSON lines)."""
    from hub.http.consent.queries import persons_of_resident

    no = _resident_no(resident_no)
    db = _database(database_url(state, database, get_settings()))
    sessions = db.sessions
    try:
        with sessions() as s:
            if not persons_of_resident(s, no):
                typer.echo("no hub person for this resident number: nothing was disclosed", err=True)
            rows = disclosure_rows(s, no)
    except SQLAlchemyError as exc:
        _fail(f"cannot read the audit trail ({type(exc).__name__}); is the database migrated?")
        return
    finally:
        db.close()
    for row in rows:
        typer.echo(_line(row))


# --------------------------------------------------------------------------- consent record|withdraw|list|designate
def _run_service(state: Path | None, database: str | None, bootstrap: str | None, prefix: str | None,
                 action: Any) -> Any:
    """Build the service (Kafka publisher when a broker is configured, else the outbox) and run ``action``."""
    from hub.http.consent.models import ConsentServiceError
    from hub.http.consent.publishers import KafkaEventPublisher, OutboxEventPublisher
    from hub.http.consent.service import ConsentService
    from hub.topics import Topics

    settings = get_settings()
    db = _database(database_url(state, database, settings))
    sessions = db.sessions
    topic = Topics(topic_prefix(state, prefix, settings)).intake
    servers = bootstrap or settings.kafka_bootstrap

    async def go() -> Any:
        if servers:
            kafka = KafkaEventPublisher(servers, topic)
            await kafka.start()
            try:
                return await action(ConsentService(sessions, kafka, municipality_code=settings.municipality_code))
            finally:
                await kafka.stop()
        outbox = OutboxEventPublisher(sessions, topic)
        result = await action(ConsentService(sessions, outbox, municipality_code=settings.municipality_code))
        typer.echo("queued in the hub outbox: the hub publishes it to the intake topic when it next starts",
                   err=True)
        return result

    try:
        return asyncio.run(go())
    except ConsentServiceError as exc:
        _fail(exc.message)
    except SQLAlchemyError as exc:
        _fail(f"nothing was recorded ({type(exc).__name__}); is the database migrated?")
    finally:
        db.close()


@consent_app.command("record")
def record(
    fields: Annotated[list[str], typer.Option("--field", help="elderly|disability|child|livelihood (repeat)")],
    start: Annotated[str, typer.Option("--start", help="period start, YYYY-MM-DD")],
    resident_no: Annotated[str | None, typer.Option("--resident-no", help="宛名番号 of the subject")] = None,
    record_key: Annotated[str | None, typer.Option("--record", help="record key of the subject")] = None,
    grantor: Annotated[str, typer.Option("--grantor", help="self, guardian or the guardian's 続柄 (母 …)")] = "self",
    end: Annotated[str | None, typer.Option("--end", help="period end (inclusive), YYYY-MM-DD")] = None,
    purpose: Annotated[str, typer.Option("--purpose")] = "multi-agency-support",
    state: StateOpt = None,
    database: DatabaseOpt = None,
    bootstrap: BootstrapOpt = None,
    prefix: PrefixOpt = None,
) -> None:
    """Record a consent for the multi-agency team; prints its FHIR R5 Consent resource."""
    from pydantic import ValidationError

    from hub.http.consent.models import ConsentRequest
    from hub.http.consent.service import ConsentService

    try:
        req = ConsentRequest.model_validate({
            "subject": {"resident_no": resident_no, "record": record_key}, "fields": fields, "grantor": grantor,
            "period": {"start": start, "end": end}, "purpose": purpose})
    except ValidationError as exc:
        _fail("invalid consent: " + "; ".join(sorted({".".join(map(str, e["loc"])) or "(request)"
                                                       for e in exc.errors()})))
        return

    async def action(service: ConsentService) -> dict[str, Any]:
        return service.fhir(await service.record(req))

    typer.echo(json.dumps(_run_service(state, database, bootstrap, prefix, action), ensure_ascii=False, indent=2))


@consent_app.command("withdraw")
def withdraw(
    consent_id: Annotated[str, typer.Argument(help="the consent's id")],
    state: StateOpt = None,
    database: DatabaseOpt = None,
    bootstrap: BootstrapOpt = None,
    prefix: PrefixOpt = None,
) -> None:
    """Withdraw a consent from now on; prints the FHIR resource of the inactive version."""
    from hub.http.consent.service import ConsentService

    async def action(service: ConsentService) -> dict[str, Any]:
        return service.fhir(await service.withdraw(consent_id))

    typer.echo(json.dumps(_run_service(state, database, bootstrap, prefix, action), ensure_ascii=False, indent=2))


@consent_app.command("list")
def list_cmd(resident_no: ResidentOpt, state: StateOpt = None, database: DatabaseOpt = None) -> None:
    """Every version of every consent of the resident (JSON lines)."""
    from hub.http.consent.models import version_json
    from hub.http.consent.service import ConsentService

    no = _resident_no(resident_no)

    db = _database(database_url(state, database, get_settings()))
    sessions = db.sessions
    try:
        versions = ConsentService(sessions, _never).versions(no)
    except SQLAlchemyError as exc:
        _fail(f"cannot read the consent registry ({type(exc).__name__}); is the database migrated?")
        return
    finally:
        db.close()
    for v in versions:
        typer.echo(_line(version_json(v)))


@consent_app.command("designate")
def designate(
    household: Annotated[str, typer.Option("--household", help="hub household id")],
    members: Annotated[list[str], typer.Option("--field", help="member agency's field (repeat)")],
    start: Annotated[str, typer.Option("--start", help="YYYY-MM-DD")],
    end: Annotated[str | None, typer.Option("--end", help="YYYY-MM-DD (inclusive)")] = None,
    designation_id: Annotated[str | None, typer.Option("--id", help="amend this designation")] = None,
    by: Annotated[str, typer.Option("--by", help="operator id of who designates")] = "cli",
    state: StateOpt = None,
    database: DatabaseOpt = None,
) -> None:
    """Record the 支援会議 (第106条の6) the municipality convened for a household."""
    from pydantic import ValidationError

    from hub.http.consent.models import ConsentServiceError, DesignationRequest, designation_json
    from hub.http.consent.service import ConsentService

    try:
        req = DesignationRequest.model_validate({
            "household": household, "member_agencies": members, "start": start, "end": end,
            "designation_id": designation_id, "designated_by": by})
    except ValidationError as exc:
        _fail("invalid designation: " + "; ".join(sorted({".".join(map(str, e["loc"])) for e in exc.errors()})))
        return

    db = _database(database_url(state, database, get_settings()))
    sessions = db.sessions
    try:
        designation = ConsentService(sessions, _never).designate(req, by)
    except ConsentServiceError as exc:
        _fail(exc.message)
        return
    except SQLAlchemyError as exc:
        _fail(f"nothing was recorded ({type(exc).__name__}); is the database migrated?")
        return
    finally:
        db.close()
    typer.echo(_line(designation_json(designation)))
