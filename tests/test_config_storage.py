"""``[storage]``: SQLite by default, PostgreSQL with a url; the password is a secret."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pytest

from farmbot.config import Config, load_config
from farmbot.config.storage import StorageConfig
from farmbot.errors import ConfigError
from farmbot.storage.vault import Vault

PASSWORD = "pg-s3cret-Value"
URL = f"postgresql://farmbot:{PASSWORD}@db.example.com:5432/farm?sslmode=verify-full"


def load(tmp_path: Path, toml: str, environ: Mapping[str, str] | None = None) -> Config:
    path = tmp_path / "farmbot.toml"
    path.write_text(f'[server]\nstate_dir = "state"\n{toml}')
    return load_config(path, environ or {}, tmp_path)


def failure(tmp_path: Path, toml: str, environ: Mapping[str, str] | None = None) -> str:
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, toml, environ)
    message = str(caught.value)
    assert "\n" not in message and PASSWORD not in message
    return message


def test_without_a_url_it_is_sqlite_in_the_state_dir(tmp_path: Path) -> None:
    assert load(tmp_path, "").storage == StorageConfig()
    assert load(tmp_path, "[storage]\n").storage.backend == "sqlite"


def test_a_url_from_the_environment_or_the_vault(tmp_path: Path) -> None:
    config = load(tmp_path, '[storage]\nurl = "env:DB_URL"\npool_max = 9', {"DB_URL": URL})
    assert config.storage == StorageConfig(url=URL, pool_max=9)
    assert config.storage.backend == "postgresql"

    Vault(tmp_path / "state", {}).set("DB_URL", URL)
    Vault(tmp_path / "state", {}).set("DB_PASSWORD", PASSWORD)
    assert load(tmp_path, '[storage]\nurl = "vault:DB_URL"').storage.url == URL
    apart = load(
        tmp_path,
        '[storage]\nurl = "postgresql://farmbot@db.example.com/farm"\n'
        'password = "vault:DB_PASSWORD"\npool_min = 2\npool_max = 2',
    ).storage
    assert (apart.url, apart.password, apart.pool_min, apart.pool_max) == (
        "postgresql://farmbot@db.example.com/farm",
        PASSWORD,
        2,
        2,
    )
    for shown in (repr(apart), repr(load(tmp_path, '[storage]\nurl = "vault:DB_URL"'))):
        assert PASSWORD not in shown and "db.example.com" in shown


def test_repr_and_shown_url_mask_the_password() -> None:
    storage = StorageConfig(url=URL)
    assert storage.shown_url == (
        "postgresql://farmbot:***@db.example.com:5432/farm?sslmode=verify-full"
    )
    assert PASSWORD not in repr(storage) and PASSWORD not in repr(Config(storage=storage))


@pytest.mark.parametrize(
    ("toml", "environ", "message"),
    [
        (
            f'url = "{URL}"',
            {},
            'config: storage.url: a URL with a password is a secret: write it "env:NAME" or'
            ' "vault:NAME", or give the password as storage.password = "vault:NAME"',
        ),
        (
            'url = "mysql://farmbot@db/farm"',
            {},
            "config: storage.url: the URL is not a postgresql:// URL",
        ),
        (
            'url = "env:DB_URL"',
            {"DB_URL": f"http://farmbot:{PASSWORD}@db/farm"},
            "config: storage.url: $DB_URL is not a postgresql:// URL",
        ),
        (
            'url = "env:DB_URL"',
            {"DB_URL": f"postgresql://farmbot:{PASSWORD}%zz@db/farm"},
            'config: storage.url: $DB_URL is not a usable PostgreSQL URL: invalid'
            ' percent-encoded token: "***"',
        ),
        (
            'url = "postgresql://farmbot@db/farm?sslmdoe=require"',
            {},
            'config: storage.url: the URL is not a usable PostgreSQL URL: invalid URI query'
            ' parameter: "sslmdoe"',
        ),
        ('url = "env:DB_URL"', {}, "config: storage.url: environment variable DB_URL is not set"),
        (
            'url = 5432',
            {},
            'config: storage.url: expected a string "postgresql://..." (or "env:NAME",'
            ' "vault:NAME"), got integer 5432',
        ),
        (
            f'url = "postgresql://farmbot@db/farm"\npassword = "{PASSWORD}"',
            {},
            'config: storage.password: secrets are never written in the file; use "env:NAME"'
            ' or "vault:NAME"',
        ),
        (
            'url = "env:DB_URL"\npassword = "env:DB_PASSWORD"',
            {"DB_URL": URL, "DB_PASSWORD": PASSWORD},
            "config: storage.password: the URL has a password already; give it in one place",
        ),
        (
            'url = "postgresql://farmbot@db/farm"\npool_min = 4\npool_max = 2',
            {},
            "config: storage.pool_max: must be at least storage.pool_min (4), got 2",
        ),
        (
            "pool_max = 20",
            {},
            "config: storage.pool_max: is used only with storage.url (PostgreSQL)",
        ),
        (
            'url = "postgresql://farmbot@db/farm"\npool_mx = 2',
            {},
            "config: storage.pool_mx: unknown key (did you mean 'pool_max'?)",
        ),
    ],
)  # fmt: skip
def test_storage_errors_name_the_key_and_never_the_password(
    tmp_path: Path, toml: str, environ: Mapping[str, str], message: str
) -> None:
    assert failure(tmp_path, f"[storage]\n{toml}\n", environ) == message


def test_retention_days_on_either_backend(tmp_path: Path) -> None:
    assert (StorageConfig().keep_events_days, StorageConfig().keep_audit_days) == (30, 0)
    sqlite = load(tmp_path, "[storage]\nkeep_events_days = 7\nkeep_audit_days = 365").storage
    assert (sqlite.backend, sqlite.keep_events_days, sqlite.keep_audit_days) == ("sqlite", 7, 365)
    pg = load(
        tmp_path, '[storage]\nurl = "env:DB_URL"\nkeep_events_days = 0', {"DB_URL": URL}
    ).storage
    assert (pg.backend, pg.keep_events_days) == ("postgresql", 0)  # 0: forever
    assert failure(tmp_path, "[storage]\nkeep_events_days = -1") == (
        "config: storage.keep_events_days: must be between 0 and 36500, got -1"
    )
    assert failure(tmp_path, "[storage]\nkeep_audit_days = 1.5") == (
        "config: storage.keep_audit_days: expected an integer, got float 1.5"
    )
    assert failure(tmp_path, "[storage]\nkeep_event_days = 7") == (
        "config: storage.keep_event_days: unknown key (did you mean 'keep_events_days'?)"
    )


def test_the_metrics_token_is_a_secret_from_the_environment_or_the_vault(
    tmp_path: Path,
) -> None:
    from farmbot.config import load_server_config

    token = "metrics-" + "x" * 24
    server = load(tmp_path, "", {}).server
    assert server.metrics_token is None
    path = tmp_path / "farmbot.toml"
    env = {"METRICS": token}
    server = load_config(_with(path, 'metrics_token = "env:METRICS"'), env, tmp_path).server
    assert server.metrics_token == token and token not in repr(server)
    Vault(tmp_path / "state", {}).set("METRICS_TOKEN", token)
    server = load_config(_with(path, 'metrics_token = "vault:METRICS_TOKEN"'), {}, tmp_path).server
    assert server.metrics_token == token

    def refused(line: str, environ: Mapping[str, str]) -> str:
        with pytest.raises(ConfigError) as caught:
            load_config(_with(path, line), environ, tmp_path)
        assert token not in str(caught.value)
        return str(caught.value)

    assert refused(f'metrics_token = "{token}"', {}) == (
        'config: server.metrics_token: secrets are never written in the file; use "env:NAME"'
        ' or "vault:NAME"'
    )
    assert refused('metrics_token = "env:SHORT"', {"SHORT": "abc"}) == (
        "config: server.metrics_token: too short: a token needs 16 characters or more"
    )
    # Commands that read only [server] (farmbot secret set) work before the secret exists.
    _with(path, 'metrics_token = "vault:NOT_YET"')
    assert load_server_config(path, {}, tmp_path).metrics_token is None
    with pytest.raises(ConfigError, match=r"server\.metrics_token: .*NOT_YET"):
        load_config(path, {}, tmp_path)


def _with(path: Path, server_line: str) -> Path:
    path.write_text(f'[server]\nstate_dir = "state"\n{server_line}\n')
    return path
