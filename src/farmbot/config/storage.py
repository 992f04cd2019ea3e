"""``[storage]``: where farmbot keeps its state.

Without the section (or without ``url``), SQLite in ``server.state_dir/farmbot.db``.
``url = "postgresql://..."`` selects PostgreSQL (docs/postgres.md). A URL that carries a
password is a secret and must be written ``env:NAME`` or ``vault:NAME``; a literal URL
without a password is fine (the password may then come from ``password = "vault:NAME"``,
libpq's ``~/.pgpass`` or ``$PGPASSWORD``, or TLS client certificates). No message and no
``repr`` shows a password.

Retention, on either backend: ``keep_events_days`` (default 30) prunes older events with
their delivered alerts; ``keep_audit_days`` (default 0: forever) prunes the audit log.
"""

from __future__ import annotations

from dataclasses import dataclass

from farmbot.config.reader import (
    Table,
    integer,
    is_reference,
    resolve_secret,
    secret,
    source_of,
    type_error,
)
from farmbot.errors import ConfigError
from farmbot.redact import hide_password, url_secrets

SCHEMES = ("postgresql://", "postgres://")
DEFAULT_POOL_MIN = 1
DEFAULT_POOL_MAX = 5
DEFAULT_KEEP_EVENTS_DAYS = 30
MAX_KEEP_DAYS = 36500


@dataclass(frozen=True, slots=True, repr=False)
class StorageConfig:
    """The database: ``url=None`` is SQLite in the state directory."""

    url: str | None = None  # a libpq URL, secrets resolved
    password: str | None = None  # given apart from the URL (from the vault, say)
    pool_min: int = DEFAULT_POOL_MIN  # connections the pool keeps open
    pool_max: int = DEFAULT_POOL_MAX  # ... and at most opens
    keep_events_days: int = DEFAULT_KEEP_EVENTS_DAYS  # 0: keep every event forever
    keep_audit_days: int = 0  # 0: keep the audit log forever

    @property
    def backend(self) -> str:
        return "sqlite" if self.url is None else "postgresql"

    @property
    def shown_url(self) -> str | None:
        """The URL with its password masked, for messages and status pages."""
        return None if self.url is None else hide_password(self.url)

    def __repr__(self) -> str:
        if self.url is None:
            return "StorageConfig(backend='sqlite')"
        password = ", password=***" if self.password else ""
        return (
            f"StorageConfig(url={self.shown_url!r}{password},"
            f" pool_min={self.pool_min}, pool_max={self.pool_max})"
        )


def parse_storage(t: Table) -> StorageConfig:
    """Read ``[storage]``; every problem names its key."""
    url = t.get("url", _url)
    password = t.get("password", secret)
    pool_min = t.get("pool_min", integer(1, 100), DEFAULT_POOL_MIN)
    pool_max = t.get("pool_max", integer(1, 100), DEFAULT_POOL_MAX)
    days = integer(0, MAX_KEEP_DAYS)
    events_days = t.get("keep_events_days", days, DEFAULT_KEEP_EVENTS_DAYS)
    audit_days = t.get("keep_audit_days", days, 0)
    t.finish()
    if url is None:
        for key, given in (("password", password), ("pool_min", pool_min != DEFAULT_POOL_MIN),
                           ("pool_max", pool_max != DEFAULT_POOL_MAX)):  # fmt: skip
            if given:
                raise t.error(key, "is used only with storage.url (PostgreSQL)")
        return StorageConfig(keep_events_days=events_days, keep_audit_days=audit_days)
    if pool_max < pool_min:
        raise t.error("pool_max", f"must be at least storage.pool_min ({pool_min}), got {pool_max}")
    if password is not None and _parsed(url).get("password"):
        raise t.error("password", "the URL has a password already; give it in one place")
    return StorageConfig(
        url=url,
        password=password,
        pool_min=pool_min,
        pool_max=pool_max,
        keep_events_days=events_days,
        keep_audit_days=audit_days,
    )


def _url(t: Table, key: str, raw: object) -> str:
    if not isinstance(raw, str):
        raise type_error(key, 'a string "postgresql://..." (or "env:NAME", "vault:NAME")', raw)
    literal = not is_reference(raw)
    url = raw if literal else resolve_secret(raw, key, t.environ, t.vault)
    shown = "the URL" if literal else source_of(raw)
    if not url.startswith(SCHEMES):
        # Never echoed: it may be a secret, or a secret meant for somewhere else.
        raise ConfigError(key, f"{shown} is not a postgresql:// URL")
    try:
        params = _parsed(url)
    except ValueError as exc:
        raise ConfigError(key, f"{shown} is not a usable PostgreSQL URL: {exc}") from None
    if literal and (params.get("password") or params.get("sslpassword")):
        raise ConfigError(
            key,
            'a URL with a password is a secret: write it "env:NAME" or "vault:NAME",'
            ' or give the password as storage.password = "vault:NAME"',
        )
    return url


def _parsed(url: str) -> dict[str, str]:
    """libpq's reading of a URL; ``ValueError`` (without the URL's secrets) if it has none."""
    import psycopg  # the driver loads only when PostgreSQL is configured
    from psycopg.conninfo import conninfo_to_dict

    try:
        return {k: str(v) for k, v in conninfo_to_dict(url).items()}
    except psycopg.Error as exc:
        reason = " ".join(str(exc).split())
        for part in url_secrets(url):  # libpq quotes the token it refused, maybe a password
            reason = reason.replace(part, "***")
        raise ValueError(reason) from None
