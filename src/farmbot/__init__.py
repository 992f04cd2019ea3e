"""farmbot: run a fleet of AI coding agents in tmux, driven from chat and a web console."""

__version__ = "0.1.0"
