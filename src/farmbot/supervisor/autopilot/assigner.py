"""The assigner: which ready task goes to which builder, within the limits. Pure.

Each tick, ready tasks are handed out highest priority first (then oldest): to a free
builder of their project -- the one that worked on the task before, if it is free --
else to a builder spawned for it, while the project stays under ``max_builders`` and
the farm under ``max_agents``. A profile with an agent paused by a usage limit gets
nothing until the limit resets: neither its paused agent nor its other agents, and no
new agent of that profile is spawned (it would hit the same limit).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

from farmbot.models import Task


@dataclass(frozen=True, slots=True)
class Builder:
    """A builder the autopilot may give a task: idle, holding none, nothing queued."""

    id: str
    project: str
    profile: str


@dataclass(frozen=True, slots=True)
class Capacity:
    """How many agents run, and may run."""

    max_agents: int  # farm-wide
    running_agents: int  # live agents of every kind and project
    max_builders: Mapping[str, int]  # per project
    running_builders: Mapping[str, int]  # live builders per project
    profile_of: Mapping[str, str]  # the profile a project's new builders get
    paused_profiles: Collection[str]  # profiles with an agent under a usage limit


@dataclass(frozen=True, slots=True)
class Pick:
    """Give ``task_id`` to ``agent_id``, or to a new builder when it is None."""

    task_id: int
    agent_id: str | None


@dataclass(frozen=True, slots=True)
class Plan:
    picks: tuple[Pick, ...]
    waiting: tuple[tuple[int, str], ...] = ()  # (task, why it was not handed out)


def plan(ready: Sequence[Task], free: Sequence[Builder], capacity: Capacity) -> Plan:
    """Hand out ``ready`` tasks to ``free`` builders, spawning within ``capacity``."""
    idle = [b for b in free if b.profile not in capacity.paused_profiles]
    agents = capacity.running_agents
    builders = dict(capacity.running_builders)
    picks: list[Pick] = []
    waiting: list[tuple[int, str]] = []
    for task in sorted(ready, key=lambda t: (t.priority, t.id)):
        mine = [b for b in idle if b.project == task.project]
        if mine:
            chosen = next((b for b in mine if b.id == task.agent_id), mine[0])
            idle.remove(chosen)
            picks.append(Pick(task.id, chosen.id))
            continue
        profile = capacity.profile_of.get(task.project, "")
        limit = capacity.max_builders.get(task.project, 0)
        if profile in capacity.paused_profiles:
            waiting.append((task.id, f"profile {profile} is paused by a usage limit"))
        elif builders.get(task.project, 0) >= limit:
            waiting.append((task.id, f"project {task.project} runs its {limit} builders"))
        elif agents >= capacity.max_agents:
            waiting.append((task.id, f"the farm runs its {capacity.max_agents} agents"))
        else:
            agents += 1
            builders[task.project] = builders.get(task.project, 0) + 1
            picks.append(Pick(task.id, None))
    return Plan(tuple(picks), tuple(waiting))
