"""The autopilot's steps: what it has a node do for it, as values that travel as JSON.

The autopilot decides on one node (the leader) but its builders, their worktrees and the
projects' checkouts are on the machines that hold them. A step is one thing done there:
start a builder for a task, verify its work, land it, retire the builder, deploy a wave,
or read the checkout (the base branch, commits, a diffstat, a diff). ``builders.Builders``
sends a step to a node; the node's ``Workshop`` (``builders.LocalBuilders``) carries it
out. Each step writes its result to JSON and reads it back (``encode``, ``decode``), so a
step carried out on another node returns what it would have returned here.

A step that ``changes`` something carries out a state the autopilot recorded first. One
cut short by a node's death is run again only when it is ``repeatable`` -- it looks at
what is there before it acts (starting a builder, verifying, a git landing, retiring) --
and otherwise resolved by the autopilot (a land command or a deploy that may have run).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass
from typing import Any, ClassVar, Generic, Literal, Protocol, TypeVar

from farmbot.models import QaRun
from farmbot.supervisor.autopilot.landing import Landing
from farmbot.supervisor.shell import CommandRun

R = TypeVar("R")


class Step(ABC, Generic[R]):
    """One thing a node does for the autopilot; ``R`` is what it returns."""

    __slots__ = ()
    kind: ClassVar[str]
    changes: ClassVar[bool] = True  # False: it only reads a checkout
    project: str

    @property
    def repeatable(self) -> bool:
        """Whether it may simply run again after a node died while running it."""
        return True

    def describe(self) -> str:
        """What it does, in words (the audit shows it)."""
        return self.kind

    @abstractmethod
    async def carry_out(self, here: Workshop) -> R:
        """Do it on the node that holds the checkout (``here``)."""

    def encode(self, result: R) -> Any:
        return result

    @abstractmethod
    def decode(self, data: Any) -> R:
        """The result from its JSON (``encode``'s)."""


@dataclass(frozen=True, slots=True)
class Start(Step[None]):
    """Spawn the task's builder unless it runs already; put its worktree on the branch."""

    kind: ClassVar[str] = "start"
    project: str
    task_id: int
    agent_id: str
    number: int
    branch: str
    start: str  # where a new branch starts: the base's tip when the task was assigned

    def describe(self) -> str:
        return f"start {self.agent_id} on task {self.task_id} ({self.branch})"

    async def carry_out(self, here: Workshop) -> None:
        await here.start(self)

    def decode(self, data: Any) -> None:
        return None


@dataclass(frozen=True, slots=True)
class Verify(Step[QaRun | None]):
    """Run the project's verify command in the builder's worktree (None: there is none)."""

    kind: ClassVar[str] = "verify"
    project: str
    task_id: int
    agent_id: str

    def describe(self) -> str:
        return f"verify task {self.task_id} in {self.agent_id}'s worktree"

    async def carry_out(self, here: Workshop) -> QaRun | None:
        return await here.verify(self)

    def encode(self, result: QaRun | None) -> Any:
        return None if result is None else result.to_json()

    def decode(self, data: Any) -> QaRun | None:
        return None if data is None else QaRun(**data)


@dataclass(frozen=True, slots=True)
class Land(Step[Landing]):
    """Land a task recorded as landing: merge, rebase or the land command."""

    kind: ClassVar[str] = "land"
    project: str
    task_id: int
    command: bool  # by the project's land_command, which may have run when cut short

    @property
    def repeatable(self) -> bool:
        return not self.command  # a git landing sees work that already landed

    def describe(self) -> str:
        return f"land task {self.task_id}" + (" (land_command)" if self.command else "")

    async def carry_out(self, here: Workshop) -> Landing:
        return await here.land(self)

    def encode(self, result: Landing) -> Any:
        return asdict(result)

    def decode(self, data: Any) -> Landing:
        return Landing(**{**data, "commits": tuple(data["commits"])})


@dataclass(frozen=True, slots=True)
class Deploy(Step[CommandRun]):
    """Run a wave's deploy command (recorded before it starts, never started twice)."""

    kind: ClassVar[str] = "deploy"
    project: str
    run_id: int
    wave: int
    target: Literal["staging", "prod"]

    @property
    def repeatable(self) -> bool:
        return False

    def describe(self) -> str:
        return f"deploy wave {self.wave} of run {self.run_id} to {self.target}"

    async def carry_out(self, here: Workshop) -> CommandRun:
        return await here.deploy(self)

    def encode(self, result: CommandRun) -> Any:
        return asdict(result)

    def decode(self, data: Any) -> CommandRun:
        return CommandRun(**data)


@dataclass(frozen=True, slots=True)
class Retire(Step[None]):
    """Stop one of the autopilot's builders and remove its worktree (its branch stays)."""

    kind: ClassVar[str] = "retire"
    project: str
    agent_id: str

    def describe(self) -> str:
        return f"retire {self.agent_id}"

    async def carry_out(self, here: Workshop) -> None:
        await here.retire(self)

    def decode(self, data: Any) -> None:
        return None


@dataclass(frozen=True, slots=True)
class Base(Step[tuple[str, str] | None]):
    """The project's base branch and its tip in this checkout (None: there is none)."""

    kind: ClassVar[str] = "base"
    changes: ClassVar[bool] = False
    project: str

    async def carry_out(self, here: Workshop) -> tuple[str, str] | None:
        return await here.base(self)

    def encode(self, result: tuple[str, str] | None) -> Any:
        return None if result is None else list(result)

    def decode(self, data: Any) -> tuple[str, str] | None:
        return None if data is None else (str(data[0]), str(data[1]))


@dataclass(frozen=True, slots=True)
class Commits(Step[list[tuple[str, str]]]):
    """(sha, subject) of the commits on ``head`` that ``base`` lacks, oldest first."""

    kind: ClassVar[str] = "commits"
    changes: ClassVar[bool] = False
    project: str
    base: str
    head: str
    limit: int = 200

    async def carry_out(self, here: Workshop) -> list[tuple[str, str]]:
        return await here.commits(self)

    def encode(self, result: list[tuple[str, str]]) -> Any:
        return [list(pair) for pair in result]

    def decode(self, data: Any) -> list[tuple[str, str]]:
        return [(str(sha), str(subject)) for sha, subject in data]


@dataclass(frozen=True, slots=True)
class _Compare(Step[str]):
    """A read of ``base...head`` (``base..head`` without ``three_dots``) as text."""

    changes: ClassVar[bool] = False
    project: str
    base: str
    head: str
    three_dots: bool = True

    def decode(self, data: Any) -> str:
        return str(data)


@dataclass(frozen=True, slots=True)
class Diffstat(_Compare):
    """``git diff --stat`` of the range."""

    kind: ClassVar[str] = "diffstat"

    async def carry_out(self, here: Workshop) -> str:
        return await here.diffstat(self)


@dataclass(frozen=True, slots=True)
class Diff(_Compare):
    """The diff of the range."""

    kind: ClassVar[str] = "diff"

    async def carry_out(self, here: Workshop) -> str:
        return await here.diff(self)


class Workshop(Protocol):
    """What carries steps out on one node (``builders.LocalBuilders``)."""

    async def start(self, step: Start) -> None: ...
    async def verify(self, step: Verify) -> QaRun | None: ...
    async def land(self, step: Land) -> Landing: ...
    async def deploy(self, step: Deploy) -> CommandRun: ...
    async def retire(self, step: Retire) -> None: ...
    async def base(self, step: Base) -> tuple[str, str] | None: ...
    async def commits(self, step: Commits) -> list[tuple[str, str]]: ...
    async def diffstat(self, step: Diffstat) -> str: ...
    async def diff(self, step: Diff) -> str: ...


STEPS: dict[str, type[Step[Any]]] = {
    cls.kind: cls for cls in (Start, Verify, Land, Deploy, Retire, Base, Commits, Diffstat, Diff)
}


def encode_step(step: Step[Any]) -> dict[str, Any]:
    """The step as JSON: its kind and its fields."""
    return {"step": step.kind, "args": asdict(step)}  # type: ignore[call-overload]


def decode_step(data: dict[str, Any]) -> Step[Any]:
    """A step from ``encode_step``'s JSON; ``ValueError`` when it names no known step."""
    cls = STEPS.get(str(data.get("step")))
    if cls is None:
        raise ValueError(f"unknown autopilot step {data.get('step')!r}")
    return cls(**data["args"])
