"""The status page in a real headless Chromium, served by a real daemon with real agents.

Marked ``browser``: skipped where chromium/chromedriver are missing, failed instead in CI.
Every test also checks that the browser reported no error (the page runs under its own
Content-Security-Policy, so a blocked inline script or style would show here).
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from farmbot.config.node import NodeConfig
from farmbot.models import Agent, AgentKind, AgentState, DesiredState, GateStatus
from tests.backends import PostgresBackend
from tests.browser import Page, start_chromium
from tests.farm import make_config, received_prompts
from tests.helpers import retry_until
from tests.web import Web, running

pytestmark = pytest.mark.browser

SMALL_PHONE = (360, 740)
PHONE = (390, 844)
DESKTOP = (1280, 900)
LONG = "/srv/worktrees/" + "0123456789abcdef" * 12  # a path or a hash: no place to wrap


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    yield from start_chromium()


@pytest.fixture
async def page(chromium: Any) -> AsyncIterator[Page]:
    page = Page(chromium)
    yield page
    errors = [m for m in await page.console_messages() if "Content Security Policy" in m]
    assert not errors, errors  # the page runs under its own policy


@pytest.fixture
async def web(tmp_path: Path, tmux_socket: str) -> AsyncIterator[Web]:
    async with running(make_config(tmp_path, tmux_socket)) as web:
        yield web


async def logged_in(page: Page, web: Web, size: tuple[int, int] = DESKTOP) -> None:
    await page.open(f"{web.url}/#key={web.key}", *size)
    await page.until("return document.getElementById('conn').textContent === 'live'")


async def idle_builder(web: Web, number: int = 42) -> str:
    reply = await web.command(f"/spawn builder {number}")
    assert reply["ok"], reply
    agent_id = f"builder-{number}"

    async def idle() -> bool:
        agents = (await web.status())["agents"]
        return any(a["id"] == agent_id and a["state"] == "idle" for a in agents)

    await retry_until(idle, timeout=20, message=f"{agent_id} to be idle")
    return agent_id


async def permission_gate(web: Web, agent_id: str, command: str = "make test") -> int:
    """The demo agent asks to run ``command``; the gate farmbot opens for it."""
    assert (await web.command(f"/send {agent_id} run {command}"))["ok"]

    async def opened() -> int | None:
        gates = (await web.status())["gates"]
        return next((g["id"] for g in gates if g["agent_id"] == agent_id), None)

    gate: int = await retry_until(opened, timeout=20, message="the permission gate")
    return gate


async def assert_no_horizontal_overflow(page: Page) -> None:
    found = await page.js(
        """
        const width = document.documentElement.clientWidth;
        const right = (el) => el.getBoundingClientRect().right;
        const wide = [...document.querySelectorAll("body *")]
          .filter(el => el.getClientRects().length && right(el) > width + 0.5)
          .map(el => `${el.tagName.toLowerCase()}.${el.className} right=${right(el)}`);
        return {width, inner: innerWidth, scroll: document.documentElement.scrollWidth, wide};
        """
    )
    assert found["scroll"] <= found["inner"], found
    assert found["wide"] == [], found


@pytest.mark.parametrize("size", [SMALL_PHONE, PHONE, DESKTOP], ids=["360px", "390px", "1280px"])
async def test_the_page_fits_a_phone_and_a_desktop(
    page: Page, web: Web, size: tuple[int, int], tmp_path: Path
) -> None:
    agent = await idle_builder(web)
    await permission_gate(web, agent)
    gates = web.app.farm.gates
    for n in range(12):  # many alerts and events, long words in them
        await gates.open("review", f"review {n}: {LONG}", agent_id=agent, detail=LONG * 3)
    await logged_in(page, web, size)
    await page.until("return document.querySelectorAll('#gates .gate').length === 13")
    await page.until("return document.querySelectorAll('#alerts .alert').length >= 13")
    await page.screenshot(tmp_path / f"page-{size[0]}.png")
    await assert_no_horizontal_overflow(page)
    # The buttons of every row are on the screen, not cut off at the right edge.
    for css in ("#agents button", "#alerts .alert b", "#gates button"):
        right = await page.js(
            f"return Math.max(...[...document.querySelectorAll({css!r})]"
            ".map(el => el.getBoundingClientRect().right))"
        )
        assert right <= size[0], (css, right)
    if size != DESKTOP:  # the first gate and the console's input, both without scrolling
        visible = await page.js(
            """
            const inView = (el) => { const r = el.getBoundingClientRect();
                                     return r.top >= 0 && r.bottom <= innerHeight; };
            return [inView(document.querySelector("#gates button.primary")),
                    inView(document.getElementById("console-input"))];
            """
        )
        assert visible == [True, True]
        # An autopilot run and a farm of nodes come after the gates and the console.
        below = await page.js(
            """
            const top = (css) => document.querySelector(css).getBoundingClientRect().top;
            document.getElementById("nodes-box").hidden = false;
            return [top(".s-autopilot") > top(".s-console"), top(".s-nodes") > top(".s-console"),
                    top(".s-console") > top(".s-gates")];
            """
        )
        assert below == [True, True, True]


async def test_a_multi_line_prompt_from_the_console_reaches_the_agent_intact(
    page: Page, web: Web, tmp_path: Path
) -> None:
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys

    agent = await idle_builder(web)
    await logged_in(page, web)
    box = await page.find("#console-input")
    label = await page.js("return document.querySelector('label[for=console-input]').textContent")
    assert label == "Command"

    def type_prompt() -> None:
        box.click()
        keys = ActionChains(page.driver).send_keys(f"/send {agent} first line")
        keys.key_down(Keys.SHIFT).send_keys(Keys.ENTER).key_up(Keys.SHIFT)
        keys.send_keys("second line").perform()

    await page.call(type_prompt)
    assert await page.js("return document.getElementById('console-input').value") == (
        f"/send {agent} first line\nsecond line"
    )  # Shift+Enter made a new line and sent nothing
    await page.call(box.send_keys, Keys.ENTER)  # Enter sends
    await page.until("return document.getElementById('console-input').value === ''")

    async def received() -> list[str]:
        return [p for p in received_prompts(tmp_path) if p.startswith("first line")]

    assert await retry_until(received, timeout=15, message="the prompt at the agent") == [
        "first line\nsecond line"
    ]
    shown = await page.until(
        "return [...document.querySelectorAll('#console-log .in')].map(e => e.textContent)"
        ".find(t => t.includes('second line'))"
    )
    assert shown == f"› /send {agent} first line\nsecond line"


async def test_on_a_touch_screen_enter_is_a_new_line_and_send_sends(
    page: Page, web: Web, tmp_path: Path
) -> None:
    from selenium.webdriver.common.keys import Keys

    agent = await idle_builder(web)
    await page.open(f"{web.url}/#key={web.key}", *PHONE, touch=True)
    await page.until("return document.getElementById('conn').textContent === 'live'")
    hint = await page.js("return document.getElementById('console-keys').textContent")
    assert hint == "Enter starts a new line; the Send button sends."
    box = await page.find("#console-input")
    await page.call(box.send_keys, f"/send {agent} one", Keys.ENTER, "two")
    assert await page.js("return document.getElementById('console-input').value") == (
        f"/send {agent} one\ntwo"
    )
    send = await page.find("#console-form button")
    await page.call(send.click)

    async def received() -> list[str]:
        return [p for p in received_prompts(tmp_path) if p.startswith("one")]

    assert await retry_until(received, timeout=15, message="the prompt at the agent") == [
        "one\ntwo"
    ]


async def test_a_gate_approved_from_the_page_loses_its_buttons_everywhere(
    page: Page, web: Web
) -> None:
    agent = await idle_builder(web)
    await logged_in(page, web)
    gate = await permission_gate(web, agent)
    selector = f'button[data-gate="{gate}"]'
    # The gate and its alert arrive without a reload, each with Approve and Reject.
    await page.until(f"return document.querySelectorAll('#gates {selector}').length === 3")
    await page.until(f"return document.querySelectorAll('#alerts {selector}').length === 3")
    approve = await page.find(f'#gates button[data-command="/approve {gate}"]')
    assert await page.call(approve.get_attribute, "aria-label") == f"Approve gate {gate}"
    await page.call(approve.click)

    await page.until(f"return document.querySelectorAll('{selector}').length === 0")
    decided = await web.app.farm.gates.get(gate)
    assert decided.status is GateStatus.APPROVED, decided
    note = await page.js("return document.querySelector('#alerts .alert').textContent")
    assert f"gate #{gate} ✅ approved by " in note and " UTC" in note  # who, and when
    assert await page.js("return document.getElementById('gates-empty').hidden") is False
    await page.until(
        "return [...document.querySelectorAll('#console-log .msg')].some("
        f"e => e.textContent.includes('{gate}'))"
    )

    async def approved() -> bool:
        screen = "\n".join(await web.app.farm.tmux.capture(agent, 40))
        return "✓ approved: make test" in screen

    await retry_until(approved, timeout=10, message="the agent to see the approval")


async def test_a_reason_typed_by_reject_goes_with_it_to_the_agent(
    page: Page, web: Web, tmp_path: Path
) -> None:
    from selenium.webdriver.common.keys import Keys

    agent = await idle_builder(web)
    await logged_in(page, web)
    gate = await permission_gate(web, agent)
    box = await page.until(
        f"return document.querySelector('#gates input.answer[data-command=\"/reject {gate}\"]')"
    )
    label = await page.call(box.get_attribute, "aria-label")
    assert label == f"Why? (optional; sent to the agent) (Reject gate {gate})"
    # The alert's Reject asks too (its button says so), each with a field of its own.
    await page.until(
        f"return document.querySelectorAll('#alerts .ask[data-gate=\"{gate}\"]').length === 1"
    )
    await page.call(box.send_keys, "use make check instead", Keys.ENTER)  # Enter presses Reject

    await page.until(f"return document.querySelectorAll('[data-gate=\"{gate}\"]').length === 0")
    decided = await web.app.farm.gates.get(gate)
    assert (decided.status, decided.reason) == (GateStatus.REJECTED, "use make check instead")
    shown = await page.js(
        "return [...document.querySelectorAll('#console-log .in')].map(e => e.textContent)"
    )
    assert f"› /reject {gate} use make check instead" in shown

    async def told() -> list[str]:
        return [p for p in received_prompts(tmp_path) if p == "use make check instead"]

    assert await retry_until(told, timeout=15, message="the reason at the agent")


async def test_updates_arrive_without_a_reload_and_keep_the_selection(page: Page, web: Web) -> None:
    await logged_in(page, web)
    await page.js(
        """
        window.farmbotTestMarker = 1;
        const intro = document.querySelector("#console-log .dim");
        const range = document.createRange(); range.selectNodeContents(intro);
        getSelection().removeAllRanges(); getSelection().addRange(range);
        """
    )
    selected = await page.js("return getSelection().toString()")
    assert selected.startswith("Type a command")

    agent = await idle_builder(web, 7)
    await page.until(f"return document.querySelector('#agents li[data-key=\"{agent}\"]')")
    await page.until(
        f"return document.querySelector('#agents li[data-key=\"{agent}\"] .state')"
        ".textContent === 'idle'"
    )
    assert await page.js("return window.farmbotTestMarker") == 1  # the same page, not reloaded
    assert await page.js("return performance.getEntriesByType('navigation').length") == 1
    assert await page.js("return getSelection().toString()") == selected
    urls = await page.js(
        "return [link.source.url, ...performance.getEntriesByType('resource').map(e => e.name)]"
    )
    assert "/api/stream?ticket=" in urls[0]
    assert not [u for u in urls if web.key in u]  # the key is never in a URL

    # The connection drops (the server closes it): the page says so, reconnects with a
    # new ticket, and the next change arrives too.
    web.app.farm.web.guard.close_all()
    await page.until("return document.getElementById('conn').textContent !== 'live'", timeout=5)
    await page.until("return document.getElementById('conn').textContent === 'live'", timeout=10)
    assert (await web.command(f"/kill {agent}"))["ok"]
    await page.until(
        f"return document.querySelector('#agents li[data-key=\"{agent}\"] .state')"
        ".textContent === 'stopped'"
    )
    assert await page.js("return window.farmbotTestMarker") == 1


async def test_a_wrong_key_says_so_and_the_right_one_logs_in(page: Page, web: Web) -> None:
    await page.open(f"{web.url}/#key=not-the-key-of-this-farmbot", *PHONE)
    error = await page.until(
        "const box = document.getElementById('login');"
        "return !box.hidden && document.getElementById('login-error').textContent"
    )
    assert error.startswith("That key was not accepted: it is wrong, or farmbot now has a new one")
    assert await page.js("return location.hash") == ""  # the key left the address bar
    assert await page.js("return document.activeElement.id") == "key-input"

    field = await page.find("#key-input")
    await page.call(field.send_keys, "bad key with spaces\n")
    error = await page.js("return document.getElementById('login-error').textContent")
    assert error.startswith("That is not a farmbot key")

    await page.call(field.clear)
    await page.call(field.send_keys, web.key + "\n")
    await page.until("return document.getElementById('conn').textContent === 'live'")
    assert await page.js("return document.getElementById('app').hidden") is False


async def test_a_file_reply_shows_a_small_text_file_and_offers_a_download(
    page: Page, web: Web, tmp_path: Path
) -> None:
    from selenium.webdriver.common.keys import Keys

    agent = await idle_builder(web)
    worktree = next(a["workdir"] for a in (await web.status())["agents"] if a["id"] == agent)
    (Path(worktree) / "notes.txt").write_text("step 1: <done>\nstep 2: é\n")
    await logged_in(page, web)
    box = await page.find("#console-input")
    await page.call(box.send_keys, f"/file {agent} notes.txt", Keys.ENTER)
    shown = await page.until(
        "const pre = [...document.querySelectorAll('#console-log pre')].pop();"
        "const a = document.querySelector('#console-log a[download]');"
        "return pre && a && [pre.textContent, a.getAttribute('download'), a.textContent,"
        " atob(a.href.split(',')[1])]"
    )
    assert shown[:3] == ["step 1: <done>\nstep 2: é\n", "notes.txt", "download notes.txt"]
    assert shown[3].encode("latin-1").decode() == "step 1: <done>\nstep 2: é\n"  # the bytes
    await page.screenshot(tmp_path / "file-reply.png")


async def test_the_nodes_of_a_farm_and_a_quiet_nodes_agent_shown_as_node_down(
    page: Page, tmp_path: Path, tmux_socket: str, pg_backend: PostgresBackend
) -> None:
    config = dataclasses.replace(
        make_config(tmp_path, tmux_socket),
        storage=pg_backend.storage_config(),
        node=NodeConfig(name="a", heartbeat=0.2),
    )
    async with running(config) as web:
        # Node b started, took an agent, and went quiet (a machine switched off).
        storage = web.app.farm.storage
        await storage.nodes.register_node("b", url="", version="1", projects=["proj"])
        await storage.agents.save_agent(
            Agent(
                id="b-shell", project="proj", kind=AgentKind.SHELL, profile="shell", number=1,
                workdir="/w", branch=None, desired=DesiredState.RUNNING, state=AgentState.IDLE,
                state_reason="", created_at=0.0, updated_at=0.0, state_since=0.0, node="b",
            )
        )  # fmt: skip
        here = await idle_builder(web)

        async def b_down() -> bool:
            nodes = (await web.status())["nodes"]
            return any(n["name"] == "b" and n["health"] == "down" for n in nodes)

        await retry_until(b_down, message="node b to be down")
        await logged_in(page, web)
        nodes = await page.until(
            "const rows = [...document.querySelectorAll('#nodes li')].map(li =>"
            " [...li.children].map(c => c.textContent.replace(/\\s+/g, ' ').trim()));"
            "return !document.getElementById('nodes-box').hidden && rows.length === 2 && rows"
        )
        a, b = sorted(nodes)
        assert a[:3] == ["a", "leader", "here"] and a[3].startswith("up heard"), nodes
        assert a[4] == "1 agent" and b[0] == "b" and b[1].startswith("down heard"), nodes
        assert b[2:] == ["1 agent", "proj"], nodes
        agents = await page.js(
            "return Object.fromEntries([...document.querySelectorAll('#agents li')].map(li =>"
            " [li.dataset.key, [li.querySelector('.state').textContent,"
            " li.querySelector('.a-project').textContent.replace(/\\s+/g, ' ').trim()]]))"
        )
        assert agents == {here: ["idle", "proj @a"], "b-shell": ["node down", "proj @b"]}
