"""The pane classifier against real screens of every built-in profile's CLI (tests/screens/).

No tmux here: each file is a capture of a real CLI (see tests/screens/README.md), named for
what a correct classifier must say. A screen showing a question must be ``waiting`` --
nothing may be typed into it -- whatever else is on it.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from farmbot.config.schema import builtin_profiles
from farmbot.models import AgentState
from farmbot.supervisor.panes import PanePatterns, classify, waiting_question
from farmbot.supervisor.state import after_prompt

SCREENS = Path(__file__).parent / "screens"
CORPUS = sorted(SCREENS.glob("*/*/*.txt"))
EXPECTED = {"idle": AgentState.IDLE, "busy": AgentState.BUSY, "waiting": AgentState.WAITING}
PROFILES = builtin_profiles()


def patterns(cli: str) -> PanePatterns:
    return PanePatterns.of(PROFILES[cli])


def test_the_corpus_covers_every_built_in_profile() -> None:
    assert {path.relative_to(SCREENS).parts[0] for path in CORPUS} == set(PROFILES)
    for cli in PROFILES:
        kinds = {p.name.split("--")[0] for p in CORPUS if p.relative_to(SCREENS).parts[0] == cli}
        assert {"idle", "busy", "waiting"} <= kinds, cli


@pytest.mark.parametrize("path", CORPUS, ids=lambda p: str(p.relative_to(SCREENS)))
def test_each_captured_screen_is_classified_as_it_should(path: Path) -> None:
    cli = path.relative_to(SCREENS).parts[0]
    expected = path.name.split("--")[0]
    lines = path.read_text("utf-8").splitlines()
    seen = classify(lines, patterns(cli))
    if expected == "unknown":  # dead: tmux's pane_dead says so, not the text
        assert seen is not AgentState.WAITING
        if any("Pane is dead (" in line for line in lines[-3:]):
            assert seen is None
        return
    assert seen is EXPECTED[expected]


@pytest.mark.parametrize(
    "path",
    [p for p in CORPUS if p.name.startswith("waiting--")],
    ids=lambda p: str(p.relative_to(SCREENS)),
)
def test_every_question_is_named_for_its_gate(path: Path) -> None:
    cli = path.relative_to(SCREENS).parts[0]
    question = waiting_question(path.read_text("utf-8").splitlines(), patterns(cli))
    assert question and len(question.splitlines()) <= 20


def test_codex_s_selected_option_is_not_its_idle_prompt() -> None:
    # The bug of Codex 0.171.0: "› 1. Yes, proceed (y)" looked like the "› " composer, so
    # the pane passed for idle, and the Enter after a /send approved the command.
    screen = (SCREENS / "codex/0.171.0/waiting--exec-approval.txt").read_text().splitlines()
    assert any(line.startswith("› 1. Yes, proceed") for line in screen)
    assert classify(screen, patterns("codex")) is AgentState.WAITING


def test_an_answered_question_in_a_repl_s_history_does_not_wait() -> None:
    demo = patterns("demo")
    answered = [
        " Do you want to proceed?",
        " ❯ 1. Yes",
        "   3. No",
        " Esc to cancel",
        "✓ approved: make deploy",
        "✓ done: run make deploy",
        "demo> ",
    ]
    assert classify(answered, demo) is AgentState.IDLE
    assert classify(answered[:4], demo) is AgentState.WAITING


def test_a_person_s_own_prompt_is_not_the_agent_s_question() -> None:
    # The screen after "/send builder-1 Do you want to proceed? yes, run the tests":
    # the echo of the person's words is above, what the agent wrote since is below.
    screen = [
        "demo> Do you want to proceed? yes, run the tests",
        "> received: Do you want to proceed? yes, run the tests",
        "⠋ working... step 1/4",
    ]
    said = list(after_prompt(tuple(screen), "Do you want to proceed? yes, run the tests"))
    assert classify(said, patterns("demo")) is AgentState.BUSY
    assert classify(screen, patterns("demo")) is AgentState.BUSY  # a busy line after it


def test_an_empty_screen_says_nothing() -> None:
    assert classify([], patterns("claude")) is None
    assert classify(["", "   "], patterns("codex")) is None
