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
"""

from farmbot.supervisor.autopilot.control import Control, TaskDraft, TaskView
from farmbot.supervisor.autopilot.milestones import MILESTONE, Milestones
from farmbot.supervisor.autopilot.runner import Autopilot

__all__ = ["MILESTONE", "Autopilot", "Control", "Milestones", "TaskDraft", "TaskView"]
