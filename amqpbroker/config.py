"""One frozen settings object, built from command-line flags (or the embedding API)."""

from __future__ import annotations

import attrs

from .versions import DEFAULT_VERSION, Behaviour, behaviour

# RabbitMQ's defaults, so clients negotiate the same values against either broker.
DEFAULT_PORT = 5672
DEFAULT_CHANNEL_MAX = 2047
DEFAULT_FRAME_MAX = 131072
DEFAULT_HEARTBEAT = 60
# AMQP handshake must complete within this many seconds (RabbitMQ: 10 s).
DEFAULT_HANDSHAKE_TIMEOUT = 10.0
# Delivery acknowledgement timeout, ms (RabbitMQ 3.10's consumer_timeout: 30 min).
DEFAULT_CONSUMER_TIMEOUT = 1_800_000
# RabbitMQ's management plugin's default request body cap, in bytes.
DEFAULT_MANAGEMENT_MAX_BODY_SIZE = 20_000_000
# RabbitMQ's management plugin port.
DEFAULT_MANAGEMENT_PORT = 15672


def _known_version(_settings: object, _attribute: object, value: str) -> None:
    behaviour(value)  # raises ValueError for a version we do not mimic


@attrs.frozen
class Settings:
    # Which RabbitMQ release to behave as where clients can tell (versions.py).
    rabbitmq_version: str = attrs.field(default=DEFAULT_VERSION, validator=_known_version)
    host: str = "127.0.0.1"
    # Further addresses to listen on (--host given more than once); clients are told
    # about ``host``.
    more_hosts: tuple[str, ...] = ()
    port: int = DEFAULT_PORT
    data_dir: str | None = None
    sync: str = "full"
    # Startup integrity check of the SQLite store: "auto" or "full" (store/sqlite.py).
    store_check: str = "auto"
    log_level: str = "info"
    channel_max: int = DEFAULT_CHANNEL_MAX
    frame_max: int = DEFAULT_FRAME_MAX
    heartbeat: int = DEFAULT_HEARTBEAT
    # Largest message body; None: the RabbitMQ version's default (versions.py).
    max_message_size: int | None = None
    handshake_timeout: float = DEFAULT_HANDSHAKE_TIMEOUT
    # A channel holding a delivery unacked this long (ms) is closed; 0 disables it.
    consumer_timeout: int = DEFAULT_CONSUMER_TIMEOUT
    default_user: str = "guest"
    default_pass: str = "guest"
    # Resource alarms (RabbitMQ's defaults): block publishers when this process uses
    # more than this fraction of RAM, or the data partition has less free space.
    memory_high_watermark: float = 0.4
    disk_free_limit: int = 50_000_000
    # RabbitMQ lets guest log in only from loopback; tests on 127.0.0.1 pass that.
    loopback_users: tuple[str, ...] = ("guest",)
    # The management HTTP API (amqpbroker/management): off by default so an embedded
    # broker does not pay for it; the command line turns it on.  Port 0: a free one.
    management: bool = False
    management_host: str = "127.0.0.1"
    management_port: int = DEFAULT_MANAGEMENT_PORT
    # Largest request body the API reads (RabbitMQ's management.http.max_body_size,
    # 20,000,000 bytes by default since its CVE-2023-46118 fix).
    management_max_body_size: int = DEFAULT_MANAGEMENT_MAX_BODY_SIZE
    # A RabbitMQ definitions file applied at start (vhosts, exchanges, queues...).
    load_definitions: str | None = None
    # amqps (server/tls.py): a listener on this port (None: none; 0: a free one),
    # with this certificate chain and key. A CA makes clients' certificates verified
    # when presented (required with tls_require_client_cert); a verified one logs in
    # with EXTERNAL as its common name, or its whole subject DN.
    tls_port: int | None = None
    tls_cert: str | None = None
    tls_key: str | None = None
    tls_ca: str | None = None
    tls_require_client_cert: bool = False
    tls_login_from: str = "common_name"
    # Resource limits, 0 = none (RabbitMQ's defaults). Connections past the node's
    # limit are refused at connection.open (530); consumers per channel (530, as
    # RabbitMQ's consumer_max_per_channel); queues per vhost (406, as RabbitMQ's vhost
    # limit max-queues).
    max_connections: int = 0
    max_consumers_per_channel: int = 0
    max_queues_per_vhost: int = 0

    @property
    def behaviour(self) -> Behaviour:
        """The row of versions.py for ``rabbitmq_version``."""
        return behaviour(self.rabbitmq_version)

    @property
    def message_size_limit(self) -> int:
        """The largest message body: the setting, else the version's default."""
        if self.max_message_size is not None:
            return self.max_message_size
        return self.behaviour.max_message_size
