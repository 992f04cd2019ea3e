"""Persistent state: the Store interface and its SQLite implementation."""
