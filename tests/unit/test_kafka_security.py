"""Every Kafka client tsunagu builds gets the TLS/SASL settings of the cluster it talks to."""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from pydantic import SecretStr

from hub.kafka import broker as broker_mod
from hub.kafka import security, topicreader
from hub.kafka import service as service_mod
from hub.settings import Settings
from hub.topics import Topics

BOOT = "kafka-0.example:9093"


class _Stop(Exception):
    pass


class _Recorder:
    """Stands in for a client class: records its keyword arguments, then stops the caller."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self.calls.append(kwargs)
        raise _Stop


def _self_signed_ca() -> bytes:
    """A throw-away CA certificate (PEM), so the TLS context really loads a file."""
    from datetime import UTC, datetime, timedelta

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "tsunagu-test-ca")])
    now = datetime.now(UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(now - timedelta(days=1)).not_valid_after(now + timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.PEM)


@pytest.fixture()
def sasl_cluster(tmp_path: Path) -> Settings:
    ca = tmp_path / "ca.crt"
    ca.write_bytes(_self_signed_ca())
    settings = Settings(kafka_bootstrap=BOOT, kafka_security_protocol="SASL_SSL",
                        kafka_sasl_mechanism="SCRAM-SHA-512", kafka_sasl_username="tsunagu",
                        kafka_sasl_password=SecretStr("pw-123"), kafka_ssl_cafile=ca)
    with broker_mod.kafka_cluster(settings) as bootstrap:
        assert bootstrap == BOOT
    return settings


def test_kafka_python_clients_get_sasl_and_tls(sasl_cluster: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    """Admin (topics), export reader, lag reader and the connectors' producer all get SASL_SSL, SCRAM and the CA."""
    from connectors import runner

    admin, consumer, producer = _Recorder(), _Recorder(), _Recorder()
    monkeypatch.setattr(broker_mod, "KafkaAdminClient", admin)
    monkeypatch.setattr(topicreader, "KafkaConsumer", consumer)
    monkeypatch.setattr("kafka.KafkaAdminClient", admin)
    monkeypatch.setattr(runner, "KafkaProducer", producer)
    with pytest.raises(_Stop):
        broker_mod.ensure_topics(BOOT, Topics("t"), 1)
    with pytest.raises(_Stop):
        list(topicreader.read_topic(BOOT, "t.intake.v1"))
    with pytest.raises(_Stop):
        topicreader.group_lag(BOOT, "g", "t.intake.v1")
    with pytest.raises(_Stop):
        runner.make_producer(BOOT, **security.kafka_python_security(BOOT))
    expected = {"bootstrap_servers": BOOT, "security_protocol": "SASL_SSL", "sasl_mechanism": "SCRAM-SHA-512",
                "sasl_plain_username": "tsunagu", "sasl_plain_password": "pw-123",
                "ssl_cafile": str(sasl_cluster.kafka_ssl_cafile)}
    calls = admin.calls + consumer.calls + producer.calls
    assert len(calls) == 4
    for call in calls:
        assert {k: call.get(k) for k in expected} == expected


def test_faststream_hub_and_aiokafka_get_sasl_and_tls(sasl_cluster: Settings, monkeypatch: pytest.MonkeyPatch,
                                                      tmp_path: Path) -> None:
    """The hub's FastStream broker gets SCRAM-SHA-512 over TLS; the consent API's aiokafka producer likewise."""
    from faststream.security import SASLScram512

    from hub.http.consent import publishers

    fs = _Recorder()
    monkeypatch.setattr(service_mod, "KafkaBroker", fs)
    with pytest.raises(_Stop):
        service_mod.HubService(SimpleNamespace(), sasl_cluster, BOOT)  # type: ignore[arg-type]  # core unused here
    sec = fs.calls[0]["security"]
    assert isinstance(sec, SASLScram512)
    assert sec.use_ssl
    assert sec.ssl_context is not None
    assert sec.username == "tsunagu"

    aio = _Recorder()
    monkeypatch.setattr("aiokafka.AIOKafkaProducer", aio)
    with pytest.raises(_Stop):
        asyncio.run(publishers.KafkaEventPublisher(BOOT, "t.intake.v1").start())
    call = aio.calls[0]
    assert (call["security_protocol"], call["sasl_mechanism"], call["sasl_plain_username"],
            call["sasl_plain_password"]) == ("SASL_SSL", "SCRAM-SHA-512", "tsunagu", "pw-123")
    assert call["ssl_context"] is not None


def test_embedded_broker_address_is_plaintext() -> None:
    """A cluster nobody registered (the embedded broker) is spoken to in PLAINTEXT without credentials."""
    assert security.kafka_python_config("127.0.0.1:1") == {"bootstrap_servers": "127.0.0.1:1",
                                                           "security_protocol": "PLAINTEXT"}
    assert security.faststream_security("127.0.0.1:1") is None


def test_inconsistent_security_settings_are_named_without_the_secret(tmp_path: Path) -> None:
    """SASL without mechanism/user/password and a missing CA file are each reported; the password never is."""
    sec = security.KafkaSecurity.from_settings(Settings(
        kafka_security_protocol="SASL_SSL", kafka_ssl_cafile=tmp_path / "missing.crt"))
    problems = sec.problems()
    assert any("TSUNAGU_KAFKA_SASL_MECHANISM is required" in p for p in problems)
    assert any("TSUNAGU_KAFKA_SASL_PASSWORD is required" in p for p in problems)
    assert any("TSUNAGU_KAFKA_SSL_CAFILE: no such file" in p for p in problems)
    ok = security.KafkaSecurity.from_settings(Settings(
        kafka_security_protocol="SASL_PLAINTEXT", kafka_sasl_mechanism="PLAIN", kafka_sasl_username="u",
        kafka_sasl_password=SecretStr("secret-value")))
    assert ok.problems() == []
    assert "secret-value" not in repr(ok)
