"""Settings every service shares: where NATS and PostgreSQL are, HTTP, logging, shutdown."""

from __future__ import annotations

from typing import Annotated

import msgspec

NatsUrl = Annotated[str, msgspec.Meta(extra={"env": "NATS_URL"})]
DatabaseUrl = Annotated[str, msgspec.Meta(extra={"env": "DATABASE_URL"})]
LogLevel = Annotated[str, msgspec.Meta(extra={"env": "CAREBUS_LOG_LEVEL"})]
ShutdownGrace = Annotated[float, msgspec.Meta(gt=0, extra={"env": "CAREBUS_SHUTDOWN_GRACE_S"})]
Port = Annotated[int, msgspec.Meta(ge=0, le=65535)]
# PEM files for TLS to NATS (docs/decisions/024): the CA that signed the servers' certificate,
# and this client's certificate and key when the servers require one (mutual TLS).
NatsTlsCa = Annotated[str, msgspec.Meta(extra={"env": "NATS_TLS_CA"})]
NatsTlsCert = Annotated[str, msgspec.Meta(extra={"env": "NATS_TLS_CERT"})]
NatsTlsKey = Annotated[str, msgspec.Meta(extra={"env": "NATS_TLS_KEY"})]
# HTTP clients (docs/decisions/023): the same for every service, hence one name each.
AuthCacheSeconds = Annotated[
    float, msgspec.Meta(ge=0, le=300, extra={"env": "CAREBUS_AUTH_CACHE_S"})
]
RatePerSecond = Annotated[float, msgspec.Meta(gt=0, extra={"env": "CAREBUS_RATE_LIMIT_PER_S"})]
RateBurst = Annotated[int, msgspec.Meta(ge=1, extra={"env": "CAREBUS_RATE_LIMIT_BURST"})]
JwksUrl = Annotated[str, msgspec.Meta(extra={"env": "CAREBUS_AUTH_JWKS_URL"})]
JwtIssuer = Annotated[str, msgspec.Meta(extra={"env": "CAREBUS_AUTH_JWT_ISSUER"})]
JwtAudience = Annotated[str, msgspec.Meta(extra={"env": "CAREBUS_AUTH_JWT_AUDIENCE"})]
# The data key(s) sealing kept inputs at rest (docs/decisions/028): id:base64[;id:base64...].
DataKey = Annotated[str, msgspec.Meta(extra={"env": "CAREBUS_DATA_KEY"})]
DataKeyFile = Annotated[str, msgspec.Meta(extra={"env": "CAREBUS_DATA_KEY_FILE"})]


class NatsTlsSettings(msgspec.Struct, frozen=True, kw_only=True):
    """TLS to NATS, off unless a CA is named; the credentials ride in NATS_URL's user info."""

    nats_tls_ca: NatsTlsCa = ""
    nats_tls_cert: NatsTlsCert = ""
    nats_tls_key: NatsTlsKey = ""


class RuntimeSettings(NatsTlsSettings, frozen=True, kw_only=True):
    """Fields common to every service; a service's settings class subclasses this."""

    nats_url: NatsUrl = "nats://127.0.0.1:4222"
    database_url: DatabaseUrl = "postgresql://postgres@127.0.0.1:5432/carebus"
    http_host: str = "127.0.0.1"
    http_port: Port = 8080
    log_level: LogLevel = "INFO"
    # SIGTERM: stop fetching, finish and ack in-flight messages within this many seconds.
    shutdown_grace_s: ShutdownGrace = 20.0
    # Readiness probes give up on NATS / PostgreSQL after this long.
    probe_timeout_s: float = 1.0
    # HTTPS when both are set (PEM paths); plain HTTP otherwise.
    tls_cert: str = ""
    tls_key: str = ""
    # Requests in flight at once (health probes not counted); beyond, 503 + Retry-After.
    max_in_flight: Annotated[int, msgspec.Meta(ge=1)] = 256
    # A revoked API key is refused within this many seconds (the in-process cache).
    auth_cache_s: AuthCacheSeconds = 10.0
    # Each client's token bucket per replica, unless its own rate is set (`carebus clients`).
    rate_limit_per_s: RatePerSecond = 100.0
    rate_limit_burst: RateBurst = 200
    # OAuth2 bearer JWTs are accepted when a JWKS URL is set (issuer and audience required).
    auth_jwks_url: JwksUrl = ""
    auth_jwt_issuer: JwtIssuer = ""
    auth_jwt_audience: JwtAudience = ""
    # Kept inputs are sealed with the first key; every one listed opens (rotation).
    data_key: DataKey = ""
    data_key_file: DataKeyFile = ""


Seconds = Annotated[float, msgspec.Meta(gt=0)]


class IntakeSettings(RuntimeSettings, frozen=True, kw_only=True):
    """Fields every adapter shares: its MLLP listener, upload size, publish confirmation."""

    mllp_host: str = "127.0.0.1"
    mllp_port: Port = 2575
    mllp_max_message_bytes: Annotated[int, msgspec.Meta(ge=1024)] = 1_048_576
    # A connection that sends nothing for this long is closed (senders reconnect).
    mllp_idle_timeout_s: Seconds = 300.0
    # A message must be complete this long after its first byte (a slow trickle is closed).
    mllp_message_deadline_s: Seconds = 60.0
    # Connections open at once; more are refused (carebus_mllp_refused_connections_total).
    mllp_max_connections: Annotated[int, msgspec.Meta(ge=1)] = 200
    # Comma-separated networks allowed to connect ("10.1.0.0/16, 192.168.7.12"); empty: any.
    mllp_allowed_peers: str = ""
    # TLS on the listener when both are set (PEM paths); with a client CA, mutual TLS.
    mllp_tls_cert: str = ""
    mllp_tls_key: str = ""
    mllp_tls_client_ca: str = ""
    # The largest HTTP request body taken (uploads, re-drives with a corrected input).
    max_upload_bytes: Annotated[int, msgspec.Meta(ge=1024)] = 50 * 1024 * 1024
    # JetStream must confirm a publish within this time, else no ACK / HTTP 503 is answered.
    publish_timeout_s: Seconds = 5.0
