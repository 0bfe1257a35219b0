"""How every Kafka client of tsunagu authenticates to a cluster (TLS, SASL), from the settings.

The security of a connection is a property of the cluster: ``kafka_cluster`` records it for the
bootstrap address it yields, and every client builder asks for it by that address —
kafka-python (:func:`kafka_python_config`: producers, consumers, admin and lag readers), aiokafka
(:func:`aiokafka_config`: the consent API's producer, the bench) and FastStream
(:func:`faststream_security`: the hub service). The embedded broker is always ``PLAINTEXT``.
"""

from __future__ import annotations

import ssl
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from faststream.security import BaseSecurity, SASLPlaintext, SASLScram256, SASLScram512
from pydantic import SecretStr

from hub.settings import Settings

_lock = threading.Lock()
_NO_PASSWORD = SecretStr("")
_BY_BOOTSTRAP: dict[str, KafkaSecurity] = {}


@dataclass(frozen=True)
class KafkaSecurity:
    """One cluster's security settings; ``password`` stays a SecretStr until a client needs it."""

    protocol: str = "PLAINTEXT"
    mechanism: str = ""
    username: str = ""
    password: SecretStr = _NO_PASSWORD
    cafile: Path | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> KafkaSecurity:
        return cls(settings.kafka_security_protocol, settings.kafka_sasl_mechanism, settings.kafka_sasl_username,
                   settings.kafka_sasl_password, settings.kafka_ssl_cafile)

    @property
    def uses_ssl(self) -> bool:
        return self.protocol in ("SSL", "SASL_SSL")

    @property
    def uses_sasl(self) -> bool:
        return self.protocol.startswith("SASL_")

    def problems(self) -> list[str]:
        """What is inconsistent, in words without the secret (for ``tsunagu config check``)."""
        out: list[str] = []
        if self.uses_sasl:
            given = {"MECHANISM": self.mechanism, "USERNAME": self.username,
                     "PASSWORD": self.password.get_secret_value()}
            for name, value in given.items():
                if not value:
                    out.append(f"TSUNAGU_KAFKA_SASL_{name} is required with "
                               f"TSUNAGU_KAFKA_SECURITY_PROTOCOL={self.protocol}")
        if self.cafile is not None and not self.cafile.is_file():
            out.append(f"TSUNAGU_KAFKA_SSL_CAFILE: no such file: {self.cafile}")
        return out

    def kafka_python(self) -> dict[str, Any]:
        """Keyword arguments for kafka-python's KafkaProducer / KafkaConsumer / KafkaAdminClient."""
        config: dict[str, Any] = {"security_protocol": self.protocol}
        if self.uses_sasl:
            config.update(sasl_mechanism=self.mechanism, sasl_plain_username=self.username,
                          sasl_plain_password=self.password.get_secret_value())
        if self.uses_ssl and self.cafile is not None:
            config["ssl_cafile"] = str(self.cafile)
        return config

    def ssl_context(self) -> ssl.SSLContext | None:
        if not self.uses_ssl:
            return None
        return ssl.create_default_context(cafile=str(self.cafile) if self.cafile else None)

    def aiokafka(self) -> dict[str, Any]:
        """Keyword arguments for aiokafka's AIOKafkaProducer / AIOKafkaConsumer."""
        config: dict[str, Any] = {"security_protocol": self.protocol}
        if self.uses_sasl:
            config.update(sasl_mechanism=self.mechanism, sasl_plain_username=self.username,
                          sasl_plain_password=self.password.get_secret_value())
        if self.uses_ssl:
            config["ssl_context"] = self.ssl_context()
        return config

    def faststream(self) -> BaseSecurity | None:
        """FastStream's security object for ``KafkaBroker(security=...)`` (None: plaintext)."""
        context = self.ssl_context()
        if not self.uses_sasl:
            return BaseSecurity(ssl_context=context, use_ssl=True) if self.uses_ssl else None
        kinds: dict[str, type[SASLPlaintext] | type[SASLScram256] | type[SASLScram512]] = {
            "PLAIN": SASLPlaintext, "SCRAM-SHA-256": SASLScram256, "SCRAM-SHA-512": SASLScram512,
        }
        kind = kinds.get(self.mechanism, SASLPlaintext)
        return kind(self.username, self.password.get_secret_value(), ssl_context=context, use_ssl=self.uses_ssl)


PLAINTEXT = KafkaSecurity()


def register(bootstrap: str, security: KafkaSecurity) -> None:
    """Record how clients talk to the cluster at ``bootstrap`` (``kafka_cluster`` does this)."""
    with _lock:
        _BY_BOOTSTRAP[bootstrap] = security


def security_for(bootstrap: str) -> KafkaSecurity:
    with _lock:
        return _BY_BOOTSTRAP.get(bootstrap, PLAINTEXT)


def kafka_python_config(bootstrap: str) -> dict[str, Any]:
    """``bootstrap_servers`` and the security keyword arguments of a kafka-python client."""
    return {"bootstrap_servers": bootstrap, **security_for(bootstrap).kafka_python()}


def kafka_python_security(bootstrap: str) -> dict[str, Any]:
    """Only the security keyword arguments (for ``make_producer(bootstrap, **...)``)."""
    return security_for(bootstrap).kafka_python()


def aiokafka_config(bootstrap: str) -> dict[str, Any]:
    return {"bootstrap_servers": bootstrap, **security_for(bootstrap).aiokafka()}


def faststream_security(bootstrap: str) -> BaseSecurity | None:
    return security_for(bootstrap).faststream()
