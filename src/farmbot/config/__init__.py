"""Configuration: typed schema and the TOML loader."""
