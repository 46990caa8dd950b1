"""Every setting of doo-webhooks, read from the environment in this one place.

Each setting is an environment variable prefixed ``DOO_WEBHOOKS_``; README.rst documents
them in one table (name, default, meaning) that mirrors ``SETTINGS`` below. Nothing else
in the project reads ``os.environ`` for configuration.
"""

import dataclasses
import ipaddress
import os
import pathlib
import re

PREFIX = "DOO_WEBHOOKS_"

DEFAULT_RETRY_SCHEDULE = (10, 60, 300, 900, 3600, 10800, 21600, 43200, 86400)


def _ints(text):
    return tuple(int(part) for part in text.split(",") if part.strip())


def _floats(text):
    return tuple(float(part) for part in text.split(",") if part.strip())


def _networks(text):
    return tuple(ipaddress.ip_network(part.strip(), strict=False) for part in text.split(",") if part.strip())


def _keys(text):
    return tuple(part.strip() for part in text.split(",") if part.strip())


#: Dialect names whose bare form SQLAlchemy would map to a driver we do not ship: SQLAlchemy 2.1
#: maps ``postgresql://`` to psycopg 3; platforms and compose files hand out ``postgres://``.
#: The driver doo-webhooks installs (setup.cfg) is psycopg2.
_DIALECT_ALIASES = {"postgresql": "postgresql+psycopg2", "postgres": "postgresql+psycopg2",
                    "postgres+psycopg2": "postgresql+psycopg2"}


def database_url(text):
    """``text`` with a bare PostgreSQL scheme pointed at psycopg2; its driver must be importable.

    The one place where a database URL is normalised, so every engine, Alembic and the
    readiness check agree on the driver. A URL naming a driver that is not installed is refused
    here, in one line, instead of a ModuleNotFoundError at the first connection.
    """
    if not text:
        return text
    import sqlalchemy as sa
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError

    scheme, sep, rest = text.partition("://")
    if not sep:
        raise ValueError("not a database URL (expected e.g. postgresql://user@host/db or sqlite:///path)")
    scheme = _DIALECT_ALIASES.get(scheme.lower(), scheme)
    text = f"{scheme}://{rest}"
    try:
        url = sa.engine.make_url(text)
    except ArgumentError as exc:
        raise ValueError(f"not a database URL: {exc}") from None
    if url.get_backend_name() not in ("postgresql", "sqlite"):
        raise ValueError("doo-webhooks runs on PostgreSQL (postgresql://user@host/db) "
                         "or SQLite (sqlite:///path)")
    try:
        url.get_dialect().import_dbapi()
    except NoSuchModuleError:
        raise ValueError(f"unknown driver in {scheme!r}; use postgresql:// (psycopg2)") from None
    except ImportError as exc:
        raise ValueError(f"the driver for {scheme!r} is not installed ({exc.name or exc}); "
                         "use postgresql:// (psycopg2, installed with doo-webhooks)") from None
    return text


def _bool(text):
    if text.strip().lower() in ("1", "true", "yes", "on"):
        return True
    if text.strip().lower() in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(f"not a boolean: {text!r}")


@dataclasses.dataclass(frozen=True)
class Setting:
    name: str
    default: str
    parse: object
    meaning: str


#: The documented settings: name (without prefix), default as text, parser, meaning.
SETTINGS = (
    Setting("DATA_DIR", "~/.doo-webhooks", str,
            "Folder for the embedded SQLite database and the generated secret key."),
    Setting("DATABASE_URL", "", database_url,
            "SQLAlchemy URL of the ledger, e.g. postgresql://user@host/db (postgres:// and "
            "postgresql+psycopg2:// work too; all use psycopg2). "
            "Empty: an SQLite file in DATA_DIR."),
    Setting("REDIS_URL", "redis://127.0.0.1:6379/0", str,
            "Redis for the token cache and single-flight locks. "
            "'memory://' keeps them in the process (embedded mode)."),
    Setting("BROKER_URL", "", str,
            "Redis URL of the trigger intake (streams doo:triggers:*) and of Celery. Empty: "
            "redis://127.0.0.1:6379/0 when DATABASE_URL is set; otherwise the embedded database "
            "itself, so emit() on this machine reaches a running doo-webhooks standalone."),
    Setting("SECRET_KEYS", "", _keys,
            "Comma-separated Fernet keys, newest first, that encrypt client secrets at rest. "
            "Empty: a key is generated once into DATA_DIR/secret.key."),
    Setting("ALLOWED_NETWORKS", "", _networks,
            "CIDRs that receivers, token endpoints and origins may resolve to although they "
            "are not globally routable (e.g. 127.0.0.0/8 in tests)."),
    Setting("RETRY_SCHEDULE", ",".join(map(str, DEFAULT_RETRY_SCHEDULE)), _floats,
            "Seconds to wait after failed attempt 1, 2, ...; the last value repeats."),
    Setting("RETRY_JITTER", "0.2", float,
            "Relative jitter applied to every retry delay (0.2 = plus or minus 20 %)."),
    Setting("MAX_ATTEMPTS", "10", int,
            "Attempts before a delivery is dead (moved to the dead letters)."),
    Setting("DISABLE_AFTER", "432000", int,
            "Seconds a hook may fail every attempt before the scheduler disables it "
            "(432000 = 5 days); 0 = never."),
    Setting("SIGNING_GRACE", "86400", int,
            "Seconds a rotated signing secret keeps signing beside the new one (both signatures in "
            "webhook-signature), so receivers switch without refusing a request; 0 = none."),
    Setting("SUCCESS_STATUSES", "200", _ints,
            "HTTP statuses from a receiver that count as delivered."),
    Setting("CONNECT_TIMEOUT", "5", float, "Seconds to connect to a receiver, token endpoint or origin."),
    Setting("READ_TIMEOUT", "15", float, "Seconds to wait for a response."),
    Setting("RESPONSE_EXCERPT_BYTES", "65536", int, "How much of a receiver's answer is kept per attempt."),
    Setting("TOKEN_DEFAULT_TTL", "300", int,
            "Seconds a receiver's access token is cached when its answer has no expires_in."),
    Setting("TOKEN_LEEWAY", "30", int, "Seconds before expires_in at which a cached token is dropped."),
    Setting("LEASE_SECONDS", "60", float,
            "How long a claimed delivery belongs to one worker; after that the scheduler "
            "takes it back (the worker died)."),
    Setting("DISPATCH_INTERVAL", "1", float, "Seconds between two runs of the scheduler's dispatch_due."),
    Setting("BATCH_SIZE", "200", int, "Most deliveries a worker claims in one statement."),
    Setting("SEND_CONCURRENCY", "1000", int,
            "Most first attempts one worker process has in flight (retries get a quarter of "
            "that on top, in a lane of their own); receivers at their HOST_CONCURRENCY cap count "
            "for at most half of it."),
    Setting("HOST_CONCURRENCY", "100", int,
            "Most requests one worker process has in flight to one receiver host (host and port)."),
    Setting("ORIGIN_API_KEY", "", str, "x-api-key sent to GraphQL origins."),
    Setting("ORIGIN_TOKEN", "", str, "Bearer token sent to GraphQL origins."),
    Setting("ORIGIN_URLS", "", _keys,
            "Comma-separated URL prefixes of the platform's GraphQL API (e.g. https://gql.doo.net/). "
            "When set, hooks may only name an origin under them. The platform's origin key and "
            "token are only ever sent to an origin under one of them."),
    Setting("ACCESS_TOKEN_TTL", "3600", int, "Lifetime in seconds of tokens issued by POST /v1/oauth."),
    Setting("MAX_BODY_BYTES", "1048576", int, "Largest request body the API accepts (413 above)."),
    Setting("SESSION_TTL", "28800", int, "Lifetime in seconds of a dashboard session (/dashboard/ login)."),
    Setting("SECURE_COOKIES", "false", _bool,
            "Mark the dashboard's cookies Secure on every request, not only those that arrive over "
            "https: set it behind a proxy that terminates TLS."),
    Setting("LOG_FORMAT", "auto", str, "'json', 'text', or 'auto' (text on a terminal, JSON otherwise)."),
    Setting("LOG_LEVEL", "INFO", str, "Python log level name."),
    Setting("METRICS_PORT", "0", int,
            "Port of the Prometheus /metrics, /healthz and /readyz server of a worker or scheduler "
            "process; 0 = none. The web process and standalone serve them on their own port."),
    Setting("METRICS_HOST", "0.0.0.0", str, "Address the worker's or scheduler's metrics server binds to."),
)


@dataclasses.dataclass(frozen=True)
class Settings:
    data_dir: pathlib.Path
    database_url: str
    redis_url: str
    broker_url: str
    secret_keys: tuple
    allowed_networks: tuple
    retry_schedule: tuple
    retry_jitter: float
    max_attempts: int
    disable_after: int
    signing_grace: int
    success_statuses: tuple
    connect_timeout: float
    read_timeout: float
    response_excerpt_bytes: int
    token_default_ttl: int
    token_leeway: int
    lease_seconds: float
    dispatch_interval: float
    batch_size: int
    send_concurrency: int
    host_concurrency: int
    origin_api_key: str
    origin_token: str
    origin_urls: tuple
    access_token_ttl: int
    max_body_bytes: int
    session_ttl: int
    secure_cookies: bool
    log_format: str
    log_level: str
    metrics_port: int
    metrics_host: str

    @property
    def timeouts(self):
        return (self.connect_timeout, self.read_timeout)

    def replace(self, **changes):
        return dataclasses.replace(self, **changes)


class SettingsError(ValueError):
    """A DOO_WEBHOOKS_ variable has a value that cannot be used."""


def from_env(environ=None):
    """Read every setting from ``environ`` (default ``os.environ``)."""
    environ = os.environ if environ is None else environ
    values = {}
    for setting in SETTINGS:
        raw = environ.get(PREFIX + setting.name, setting.default)
        try:
            values[setting.name.lower()] = setting.parse(raw)
        except ValueError as exc:
            raise SettingsError(f"{PREFIX}{setting.name}={_masked(raw)!r}: {exc}") from None
    values["data_dir"] = pathlib.Path(values["data_dir"]).expanduser()
    if not values["database_url"]:
        values["database_url"] = f"sqlite:///{values['data_dir'] / 'doo-webhooks.sqlite3'}"
        values["broker_url"] = values["broker_url"] or values["database_url"]  # embedded: no broker
    values["broker_url"] = values["broker_url"] or "redis://127.0.0.1:6379/0"
    _check(values)
    return Settings(**values)


def _masked(text):
    """``text`` with the password of a URL in it replaced, so an error line can be shown."""
    return re.sub(r"(://[^:/@]*:)[^@/]*@", r"\1***@", text)


def _check(values):
    """Refuse values that would only fail later, far from their cause."""
    def need(ok, name, rule):
        if not ok:
            raise SettingsError(f"{PREFIX}{name}={values[name.lower()]!r}: {rule}")

    schedule = values["retry_schedule"]
    need(schedule and all(0 <= d <= 7 * 86400 for d in schedule), "RETRY_SCHEDULE",
         "needs one or more delays between 0 and 604800 seconds")
    need(0 <= values["retry_jitter"] < 1, "RETRY_JITTER", "must be at least 0 and below 1")
    need(values["max_attempts"] >= 1, "MAX_ATTEMPTS", "must be at least 1")
    need(values["disable_after"] >= 0, "DISABLE_AFTER", "must not be negative (0 = never)")
    need(0 <= values["signing_grace"] <= 30 * 86400, "SIGNING_GRACE",
         "must be between 0 and 2592000 seconds (30 days)")
    need(values["success_statuses"] and all(100 <= s <= 599 for s in values["success_statuses"]),
         "SUCCESS_STATUSES", "must be HTTP statuses (100-599)")
    for name in ("CONNECT_TIMEOUT", "READ_TIMEOUT", "DISPATCH_INTERVAL", "LEASE_SECONDS"):
        value = values[name.lower()]
        need(0 < value < 86400, name, "must be a number of seconds above 0 and below a day")
    for name in ("BATCH_SIZE", "SEND_CONCURRENCY", "HOST_CONCURRENCY", "RESPONSE_EXCERPT_BYTES", "TOKEN_DEFAULT_TTL", "ACCESS_TOKEN_TTL", "MAX_BODY_BYTES",
                 "SESSION_TTL"):
        need(values[name.lower()] >= 1, name, "must be at least 1")
    need(values["token_leeway"] >= 0, "TOKEN_LEEWAY", "must not be negative")
    need(values["log_format"] in ("auto", "json", "text"), "LOG_FORMAT", "must be auto, json or text")
    need(values["log_level"].upper() in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"), "LOG_LEVEL",
         "must be DEBUG, INFO, WARNING, ERROR or CRITICAL")
    need(0 <= values["metrics_port"] <= 65535, "METRICS_PORT", "must be a port number (0-65535)")


def settings_table():
    """The settings as reStructuredText rows (README.rst is checked against this)."""
    return [(PREFIX + s.name, s.default, s.meaning) for s in SETTINGS]
