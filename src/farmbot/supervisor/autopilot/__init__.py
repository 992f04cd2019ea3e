"""The autopilot: tasks with priorities and dependencies, run in waves by an assigner that
hands them to builders within limits, verified, and landed -- at milestone gates a person
approves from a phone, or by themselves, as the project's mode says.

- ``tasks``      the task state machine (pure)
- ``waves``      dependency order, cycles, readiness, what a settled wave does (pure)
- ``assigner``   which ready task goes to which builder, within the limits (pure)
- ``repo``       every git call, off the loop, with timeouts
- ``landing``    merge, rebase or land_command; deploy commands
- ``milestones`` milestone gates: what they show, and their resolver
- ``runner``     the shell: the tick, jobs, crash-safe steps
- ``control``    what people and agents do: queue, cancel, retry, assign, runs, modes

What ``farmbot serve`` loads: the daemon's graph holds the runner, control, milestones and
builders from the start, but most farms have no task most of the time, and the planning
modules -- ``tasks``, ``waves``, ``assigner``, ``steps``, ``landing`` and the run pilot
(``pilot``) -- cost start time in frozen dataclasses they define. So those are imported
inside the methods that first need them: when the tick finds an open task or run, when
a command acts on tasks or runs, or when a step is carried out (tests/test_imports.py
holds this).
"""

from farmbot.supervisor.autopilot.control import Control, TaskDraft, TaskView
from farmbot.supervisor.autopilot.milestones import MILESTONE, Milestones
from farmbot.supervisor.autopilot.runner import Autopilot

__all__ = ["MILESTONE", "Autopilot", "Control", "Milestones", "TaskDraft", "TaskView"]
