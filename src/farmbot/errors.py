"""farmbot's exceptions, one tree.

::

    FarmbotError
    ├── ConfigError              bad or missing configuration; names the key
    ├── StorageError             the database failed or is unusable
    │   └── SchemaTooNewError    the database was written by a newer farmbot
    ├── VaultError               a secret cannot be stored or read (names it, never its value)
    ├── TmuxError                a tmux call failed
    ├── DaemonUnavailable        a CLI client found no running daemon
    ├── StartFailed              `farmbot start`: the daemon died or did not answer in time
    ├── AlreadyRunning           another `farmbot serve` holds this state directory, or
    │                            runs as this node on the shared database
    ├── AdapterError             a chat platform failed (translated at the adapter edge)
    │   └── DeliveryError        one outbound message could not be delivered
    │       └── PermanentDeliveryError   ... and retrying will not help
    └── CommandError             shown to the person verbatim
        ├── UsageError           the command text did not parse; carries the usage line
        ├── NotFound             an agent, project or gate that does not exist
        ├── Conflict             already running, over a limit, stale gate, ...
        │   └── UnsavedWork      removing a worktree would lose work not on its branch
        ├── AccessDenied         the person's role does not allow the command
        ├── RateLimited          the person ran too many commands of a kind this minute
        ├── NodeUnreachable      no node that can do it is heard from; nothing was done
        └── StepInterrupted      a node died running an autopilot step; it may have acted

A ``CommandError`` is the only exception whose text reaches a person. Everything else
is logged with its traceback at one funnel (``bot.router``) and the person gets a short
message with an incident id.
"""

from __future__ import annotations


class FarmbotError(Exception):
    """Base of every farmbot exception."""


class ConfigError(FarmbotError):
    """Configuration is invalid. ``str()`` is one line: ``config: <key>: <problem>``."""

    def __init__(self, key: str, problem: str) -> None:
        self.key = key
        self.problem = problem
        super().__init__(f"config: {key}: {problem}" if key else f"config: {problem}")


class StorageError(FarmbotError):
    """The database failed or cannot be used."""


class SchemaTooNewError(StorageError):
    """The database carries a schema version this farmbot does not know."""


class VaultError(FarmbotError):
    """The vault cannot store or give a secret: unknown name, wrong key, damaged file.

    The message names the secret and never contains a value or a key.
    """


class TmuxError(FarmbotError):
    """A tmux operation failed."""


class DaemonUnavailable(FarmbotError):
    """No farmbot daemon answers at the configured address."""


class StartFailed(FarmbotError):
    """``farmbot start``: the daemon died or did not answer; ``log`` holds its last lines."""

    def __init__(self, message: str, log: list[str]) -> None:
        super().__init__(message)
        self.log = log


class AlreadyRunning(FarmbotError):
    """Another farmbot daemon already uses this state directory (or node name)."""


class AdapterError(FarmbotError):
    """A chat platform or interface failed."""


class DeliveryError(AdapterError):
    """An outbound message was not delivered; it may be retried.

    ``retry_after`` is the platform's own wait hint in seconds (HTTP 429), if it gave one.
    """

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class PermanentDeliveryError(DeliveryError):
    """An outbound message cannot be delivered however often it is retried."""


class CommandError(FarmbotError):
    """An error whose message is shown to the person verbatim."""


class UsageError(CommandError):
    """Command text that does not parse. ``usage`` is the command's usage line."""

    def __init__(self, message: str, usage: str = "") -> None:
        self.usage = usage
        super().__init__(f"{message}\nusage: {usage}" if usage else message)


class NotFound(CommandError):
    """The named agent, project or gate does not exist."""


class Conflict(CommandError):
    """The command cannot run in the current state."""


class UnsavedWork(Conflict):
    """A worktree holds work that is not on its branch (uncommitted, untracked, a detached
    HEAD's commits): it is not removed unless the person says so (``--force``)."""


class AccessDenied(CommandError):
    """The person is not allowed to run the command."""


class RateLimited(CommandError):
    """Too many commands of one kind in the last minute; ``retry_after`` is in seconds."""

    def __init__(self, message: str, *, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class NodeUnreachable(CommandError):
    """The node that must do something (or every node that could) is not heard from, or
    did not take it in time; nothing was done."""


class StepInterrupted(CommandError):
    """A node stopped while it carried out an autopilot step (its claim expired): the step
    may have had effects, so it is resolved rather than repeated blindly."""
