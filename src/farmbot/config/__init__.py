"""Configuration: typed schema and the TOML loader."""

from farmbot.config.loader import (
    find_config_path,
    load_config,
    load_server_config,
    names_storage_url,
    resolve_secret,
    write_example,
)
from farmbot.config.schema import Config

__all__ = [
    "Config",
    "find_config_path",
    "load_config",
    "load_server_config",
    "names_storage_url",
    "resolve_secret",
    "write_example",
]
