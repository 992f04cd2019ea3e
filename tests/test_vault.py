"""The vault: secrets at rest, their errors, and key rotation that survives a crash anywhere.

Rotation is tested three ways: every on-disk state it passes through built by hand; a
rotation interrupted at each step in-process (every write is fsync'ed and renamed, so the
files are what a crash leaves); and a real `farmbot secret rotate-key` killed with SIGKILL
at each step (FARMBOT_TEST_ROTATION_PAUSE, a test-only variable, makes it wait there).
"""

from __future__ import annotations

import ast
import asyncio
import base64
import json
import os
import pty
import select
import signal
import stat
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from farmbot.config import load_config
from farmbot.config.telegram import TelegramConfig
from farmbot.errors import ConfigError, VaultError
from farmbot.storage import vault as v
from farmbot.storage.vault import Vault, key_id

SECRETS = {
    "TG_TOKEN": "123456:AAE-tg-s3cret-value",
    "OPS_URL": "https://hooks.example/T0/B0?token=wh-s3cret-value",
    "OPS_AUTH": "Bearer hdr-s3cret-value",
}
STEPS = ("next-key-tmp", "next-key", "vault-tmp", "vault", "key")
# After a crash at a step, which key opens the vault: the old one or the new one.
SURVIVOR = {
    "next-key-tmp": "old",
    "next-key": "old",
    "vault-tmp": "old",
    "vault": "new",
    "key": "new",
}


class Crash(Exception):
    """Stands for the process dying at a checkpoint."""


def crash_at(step: str) -> v.Checkpoint:
    def checkpoint(at: str) -> None:
        if at == step:
            raise Crash(at)

    return checkpoint


def filled(state_dir: Path, environ: dict[str, str] | None = None) -> Vault:
    vault = Vault(state_dir, environ or {})
    for name, value in SECRETS.items():
        vault.set(name, value)
    return vault


def new_key() -> str:
    return base64.urlsafe_b64encode(os.urandom(32)).decode()


def disk_key_id(state_dir: Path) -> str:
    return key_id(v.parse_key((state_dir / "vault.key").read_text(), "test"))


def assert_all_read(state_dir: Path, environ: dict[str, str] | None = None) -> None:
    vault = Vault(state_dir, environ or {})
    assert {name: vault.get(name) for name in SECRETS} == SECRETS


def assert_clean(state_dir: Path) -> None:
    """Recovered: no temp file, no pending next key, and the vault's key is the key file's."""
    leftovers = sorted(p.name for p in state_dir.iterdir() if p.name.endswith((".tmp", ".next")))
    assert leftovers == []
    stored = json.loads((state_dir / "vault.json").read_text())["key_id"]
    assert stored == disk_key_id(state_dir)


# -- storing and reading ----------------------------------------------------------------------


def test_secrets_round_trip_encrypted_at_rest_in_0600_files(tmp_path: Path) -> None:
    state = tmp_path / "state"
    vault = filled(state)

    assert_all_read(state)
    source, infos = vault.listing()
    assert [i.name for i in infos] == sorted(SECRETS)
    assert source.where == str(state / "vault.key") and source.id == disk_key_id(state)
    for path in state.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
        content = path.read_bytes()
        assert not [s for s in SECRETS.values() if s.encode() in content], path
    assert stat.S_IMODE(state.stat().st_mode) == 0o700
    assert vault.set("TG_TOKEN", "987654:changed") is False  # replaced, not new
    assert vault.get("TG_TOKEN") == "987654:changed"
    vault.remove("TG_TOKEN")
    assert [i.name for i in vault.listing()[1]] == ["OPS_AUTH", "OPS_URL"]


def test_an_unknown_name_is_named_with_a_suggestion(tmp_path: Path) -> None:
    vault = filled(tmp_path)
    with pytest.raises(VaultError) as info:
        vault.get("TG_TOKNE")
    assert str(info.value) == (
        f"no secret 'TG_TOKNE' in the vault {tmp_path / 'vault.json'}; did you mean 'TG_TOKEN'?"
    )
    with pytest.raises(VaultError, match=r"^no secret 'X' in the vault .* \(it has: OPS_AUTH, "):
        vault.remove("X")
    with pytest.raises(VaultError, match=r"it is empty; add one with `farmbot secret set A`"):
        Vault(tmp_path / "none", {}).get("A")


def test_a_tampered_or_moved_ciphertext_is_refused_by_name(tmp_path: Path) -> None:
    filled(tmp_path)
    path = tmp_path / "vault.json"
    doc = json.loads(path.read_text())
    flipped = bytearray(base64.b64decode(doc["secrets"]["OPS_URL"]["ciphertext"]))
    flipped[0] ^= 1
    doc["secrets"]["OPS_URL"]["ciphertext"] = base64.b64encode(flipped).decode()
    doc["secrets"]["OPS_AUTH"] = doc["secrets"]["TG_TOKEN"]  # a valid ciphertext, other name
    path.write_text(json.dumps(doc))

    vault = Vault(tmp_path, {})
    assert vault.get("TG_TOKEN") == SECRETS["TG_TOKEN"]
    for name in ("OPS_URL", "OPS_AUTH"):
        with pytest.raises(VaultError) as info:
            vault.get(name)
        assert str(info.value) == (
            f"secret '{name}' cannot be decrypted: {path} was altered or damaged"
        )
    path.write_text("{not json")
    with pytest.raises(VaultError, match=r"vault\.json is damaged \(not valid JSON\)$"):
        vault.get("TG_TOKEN")


def test_a_wrong_key_is_named_as_such_before_decrypting(tmp_path: Path) -> None:
    filled(tmp_path)
    stored = json.loads((tmp_path / "vault.json").read_text())["key_id"]
    wrong = new_key()
    with pytest.raises(VaultError) as info:
        Vault(tmp_path, {"FARMBOT_VAULT_KEY": wrong}).get("TG_TOKEN")
    assert str(info.value) == (
        f"cannot read secret 'TG_TOKEN': wrong vault key: the key from $FARMBOT_VAULT_KEY "
        f"(id {key_id(base64.urlsafe_b64decode(wrong))}) is not the key vault.json was written "
        f"with (id {stored})"
    )
    with pytest.raises(VaultError, match=r"^the vault key in \$FARMBOT_VAULT_KEY is not a farm"):
        Vault(tmp_path, {"FARMBOT_VAULT_KEY": "hunter2"}).get("TG_TOKEN")
    (tmp_path / "vault.key").unlink()
    with pytest.raises(VaultError, match=r"^cannot read secret 'TG_TOKEN': no vault key: "):
        Vault(tmp_path, {}).get("TG_TOKEN")
    with pytest.raises(VaultError, match=r"no vault key"):  # never a new key over old secrets
        Vault(tmp_path, {}).set("NEW", "x")
    assert not (tmp_path / "vault.key").exists()


def test_the_key_from_the_environment_or_a_systemd_credential(tmp_path: Path) -> None:
    key = new_key()
    filled(tmp_path / "env", {"FARMBOT_VAULT_KEY": key})
    assert not (tmp_path / "env" / "vault.key").exists()  # farmbot writes no key of its own
    assert_all_read(tmp_path / "env", {"FARMBOT_VAULT_KEY": key})

    credentials = tmp_path / "credentials"  # what systemd's LoadCredential= makes
    credentials.mkdir()
    (credentials / "farmbot-vault-key").write_text(key + "\n")
    environ = {"CREDENTIALS_DIRECTORY": str(credentials)}
    assert_all_read(tmp_path / "env", environ)
    source, _ = Vault(tmp_path / "env", environ).listing()
    assert source.where == "systemd credential farmbot-vault-key"


def test_config_values_read_the_vault_like_the_environment(tmp_path: Path) -> None:
    filled(tmp_path / "state")
    config = tmp_path / "farmbot.toml"
    config.write_text(
        '[server]\nstate_dir = "state"\n'
        '[telegram]\ntoken = "vault:TG_TOKEN"\n'
        '[[webhooks]]\nname = "ops"\nurl = "vault:OPS_URL"\n'
        'headers = { Authorization = "vault:OPS_AUTH", X-Env = "env:X" }\n'
    )
    loaded = load_config(config, {"X": "from-env"}, tmp_path)
    telegram = loaded.chat(TelegramConfig)
    assert telegram is not None and telegram.token == SECRETS["TG_TOKEN"]
    [hook] = loaded.webhooks
    assert hook.url == SECRETS["OPS_URL"]
    assert dict(hook.headers) == {"Authorization": SECRETS["OPS_AUTH"], "X-Env": "from-env"}

    config.write_text('[server]\nstate_dir = "state"\n[telegram]\ntoken = "vault:TG_TOKN"\n')
    with pytest.raises(ConfigError) as info:
        load_config(config, {}, tmp_path)
    assert str(info.value) == (
        f"config: telegram.token: no secret 'TG_TOKN' in the vault "
        f"{tmp_path / 'state' / 'vault.json'}; did you mean 'TG_TOKEN'?"
    )
    config.write_text('[server]\nstate_dir = "vault:STATE"\n')
    with pytest.raises(ConfigError, match=r"^config: server.state_dir: \"vault:\" cannot be"):
        load_config(config, {}, tmp_path)


# -- rotation ---------------------------------------------------------------------------------


def test_rotation_re_encrypts_every_secret_under_a_new_key(tmp_path: Path) -> None:
    vault = filled(tmp_path)
    old = disk_key_id(tmp_path)
    before = json.loads((tmp_path / "vault.json").read_text())["secrets"]

    done = vault.rotate_key()

    assert (done.old_id, done.secrets, done.key_file) == (old, 3, tmp_path / "vault.key")
    assert done.new_id == disk_key_id(tmp_path) != old
    after = json.loads((tmp_path / "vault.json").read_text())["secrets"]
    assert all(after[n]["ciphertext"] != before[n]["ciphertext"] for n in SECRETS)
    assert [after[n]["created"] for n in SECRETS] == [before[n]["created"] for n in SECRETS]
    assert_all_read(tmp_path)
    assert_clean(tmp_path)


def test_rotation_with_an_external_key_writes_the_new_key_where_told(tmp_path: Path) -> None:
    old = new_key()
    filled(tmp_path, {"FARMBOT_VAULT_KEY": old})
    vault = Vault(tmp_path, {"FARMBOT_VAULT_KEY": old})
    with pytest.raises(VaultError, match=r"comes from \$FARMBOT_VAULT_KEY.*--new-key-file PATH"):
        vault.rotate_key()
    target = tmp_path / "outside" / "new.key"
    target.parent.mkdir()

    done = vault.rotate_key(target)

    assert done.key_file == target and stat.S_IMODE(target.stat().st_mode) == 0o600
    assert_all_read(tmp_path, {"FARMBOT_VAULT_KEY": target.read_text()})
    with pytest.raises(VaultError, match="wrong vault key"):
        vault.get("TG_TOKEN")
    with pytest.raises(VaultError, match="already exists"):
        Vault(tmp_path, {"FARMBOT_VAULT_KEY": target.read_text()}).rotate_key(target)


def test_rotation_refuses_to_start_when_a_secret_does_not_decrypt(tmp_path: Path) -> None:
    filled(tmp_path)
    path = tmp_path / "vault.json"
    doc = json.loads(path.read_text())
    doc["secrets"]["OPS_AUTH"]["nonce"] = base64.b64encode(os.urandom(12)).decode()
    path.write_text(json.dumps(doc))
    key_before = (tmp_path / "vault.key").read_bytes()
    with pytest.raises(VaultError, match=r"^secret 'OPS_AUTH' cannot be decrypted"):
        Vault(tmp_path, {}).rotate_key()
    assert (tmp_path / "vault.key").read_bytes() == key_before
    assert not (tmp_path / "vault.key.next").exists()


@pytest.mark.parametrize("step", STEPS)
def test_a_rotation_interrupted_at_any_step_loses_nothing(tmp_path: Path, step: str) -> None:
    filled(tmp_path)
    old = disk_key_id(tmp_path)
    with pytest.raises(Crash):
        Vault(tmp_path, {}, checkpoint=crash_at(step)).rotate_key()
    assert_all_read(tmp_path)  # the first open recovers
    assert_clean(tmp_path)
    assert (disk_key_id(tmp_path) == old) is (SURVIVOR[step] == "old")
    Vault(tmp_path, {}).rotate_key()  # and a rotation after the recovery works
    assert_all_read(tmp_path)


def reencrypt_by_hand(state_dir: Path, new: bytes, target: str = "vault.json") -> None:
    """vault.json as step 2 writes it: every secret sealed under ``new``."""
    doc = json.loads((state_dir / "vault.json").read_text())
    for name, value in SECRETS.items():
        nonce = os.urandom(12)
        aad = f"farmbot-vault v1\0{key_id(new)}\0{name}".encode()
        sealed = AESGCM(new).encrypt(nonce, value.encode(), aad)
        doc["secrets"][name]["nonce"] = base64.b64encode(nonce).decode()
        doc["secrets"][name]["ciphertext"] = base64.b64encode(sealed).decode()
    doc["key_id"] = key_id(new)
    (state_dir / target).write_text(json.dumps(doc))


def next_key_half_written(state_dir: Path, new: bytes) -> None:
    (state_dir / "vault.key.next.tmp").write_text(v.encode_key(new)[:10])


def next_key_written(state_dir: Path, new: bytes) -> None:
    (state_dir / "vault.key.next").write_text(v.encode_key(new) + "\n")


def secrets_half_written(state_dir: Path, new: bytes) -> None:
    next_key_written(state_dir, new)
    reencrypt_by_hand(state_dir, new, target="vault.json.tmp")


def secrets_written(state_dir: Path, new: bytes) -> None:
    next_key_written(state_dir, new)
    reencrypt_by_hand(state_dir, new)


def key_replaced(state_dir: Path, new: bytes) -> None:
    secrets_written(state_dir, new)
    os.replace(state_dir / "vault.key.next", state_dir / "vault.key")


@pytest.mark.parametrize(
    ("make_state", "survivor"),
    [
        (next_key_half_written, "old"),
        (next_key_written, "old"),
        (secrets_half_written, "old"),
        (secrets_written, "new"),
        (key_replaced, "new"),
    ],
)
def test_every_intermediate_state_recovers_to_one_valid_key(
    tmp_path: Path, make_state: Callable[[Path, bytes], None], survivor: str
) -> None:
    filled(tmp_path)
    old, new = v.parse_key((tmp_path / "vault.key").read_text(), "test"), os.urandom(32)
    make_state(tmp_path, new)

    assert_all_read(tmp_path)

    assert_clean(tmp_path)
    assert disk_key_id(tmp_path) == key_id(old if survivor == "old" else new)


def test_a_state_where_no_key_fits_is_an_error_and_changes_nothing(tmp_path: Path) -> None:
    filled(tmp_path)
    next_key_written(tmp_path, os.urandom(32))
    reencrypt_by_hand(tmp_path, os.urandom(32))  # neither vault.key nor vault.key.next
    with pytest.raises(VaultError, match=r"^cannot read secret 'OPS_URL': wrong vault key"):
        Vault(tmp_path, {}).get("OPS_URL")
    assert (tmp_path / "vault.key.next").exists()  # kept: it may be the one that fits


# -- the real command, killed mid-rotation ----------------------------------------------------


def farmbot_cli(
    config: Path, *args: str, env: dict[str, str] | None = None, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    environ = {k: x for k, x in os.environ.items() if not k.startswith("FARMBOT_")}
    return subprocess.run(
        [sys.executable, "-m", "farmbot", "--config", str(config), *args],
        input=stdin, capture_output=True, text=True, env={**environ, **(env or {})},
        timeout=30, check=False,
    )  # fmt: skip


@pytest.mark.parametrize("step", STEPS)
def test_rotate_key_killed_at_each_step_loses_nothing(tmp_path: Path, step: str) -> None:
    config = tmp_path / "farmbot.toml"
    config.write_text('[server]\nstate_dir = "state"\n')
    state = tmp_path / "state"
    for name, value in SECRETS.items():
        done = farmbot_cli(config, "secret", "set", name, stdin=value + "\n")
        assert done.returncode == 0, done.stderr
    old = disk_key_id(state)
    environ = {k: x for k, x in os.environ.items() if not k.startswith("FARMBOT_")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "farmbot", "--config", str(config), "secret", "rotate-key"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**environ, "FARMBOT_TEST_ROTATION_PAUSE": step},
    )  # fmt: skip
    try:
        assert proc.stderr is not None
        assert proc.stderr.readline() == f"paused at {step} (FARMBOT_TEST_ROTATION_PAUSE)\n"
        on_disk = sorted(p.name for p in state.iterdir())
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(10) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()
    expected_extra = {
        "next-key-tmp": ["vault.key.next.tmp"],
        "next-key": ["vault.key.next"],
        "vault-tmp": ["vault.json.tmp", "vault.key.next"],
        "vault": ["vault.key.next"],
        "key": [],
    }[step]
    assert on_disk == sorted(["vault.json", "vault.key", "vault.lock", *expected_extra])

    listed = farmbot_cli(config, "secret", "list")  # the next command recovers
    assert listed.returncode == 0, listed.stderr
    assert [line.split()[0] for line in listed.stdout.splitlines()[1:]] == sorted(SECRETS)
    assert_clean(state)
    assert (disk_key_id(state) == old) is (SURVIVOR[step] == "old")
    assert_all_read(state)


# -- values never shown -----------------------------------------------------------------------


async def test_vault_values_never_appear_in_logs_status_metrics_or_state_files(
    tmp_path: Path, tmux_socket: str
) -> None:
    """A daemon on vault secrets: Slack (Socket Mode) and Discord really connected to their
    fakes, Telegram unreachable and a webhook that fails (each failure logged), /metrics
    behind a vault token, an agent profile whose env comes from the vault."""
    from farmbot.lifecycle import lock_state
    from tests.daemon import free_port
    from tests.fakes.discord_api import FakeDiscord
    from tests.fakes.slack_api import FakeSlack
    from tests.farm import make_repo
    from tests.helpers import retry_until

    closed = free_port()  # nothing listens there: every delivery and poll fails, and is logged
    values = {
        "TG": f"123456:AAE-tg-{os.urandom(6).hex()}",
        "OPS_URL": f"http://127.0.0.1:{closed}/hooks/{os.urandom(6).hex()}",
        "OPS_AUTH": f"Bearer {os.urandom(6).hex()}",
        "SLACK_BOT": f"xoxb-{os.urandom(6).hex()}",
        "SLACK_APP": f"xapp-{os.urandom(6).hex()}",
        "SLACK_SIGNING": os.urandom(8).hex(),
        "DISCORD": f"MTEw{os.urandom(4).hex()}.GfAkEd.{os.urandom(6).hex()}",
        "METRICS": os.urandom(12).hex(),
        "AGENT_KEY": f"sk-agent-{os.urandom(6).hex()}",
    }
    port = free_port()
    repo = make_repo(tmp_path / "repo")
    config = tmp_path / "farmbot.toml"
    outputs: list[str] = []

    async def run(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        done = await asyncio.to_thread(farmbot_cli, config, *args, stdin=stdin)
        outputs.extend([done.stdout, done.stderr])
        return done

    def get(path: str, token: str) -> str:
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}{path}", headers={"Authorization": f"Bearer {token}"}
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as resp:
                body: str = resp.read().decode()
        except urllib.error.HTTPError as exc:  # /readyz: 503, Telegram cannot be reached
            body = exc.read().decode()
        return body

    async with (
        FakeSlack(bot_token=values["SLACK_BOT"], app_token=values["SLACK_APP"]) as slack,
        FakeDiscord(token=values["DISCORD"]) as discord,
    ):
        config.write_text(
            f"""
[server]
port = {port}
state_dir = "state"
metrics_token = "vault:METRICS"
[tmux]
socket = "{tmux_socket}"
[supervisor]
tick_seconds = 0.2
default_agent = "quick"
[agents.quick]
command = "sh -c 'echo bye; exit 3'"
env = {{ AGENT_API_KEY = "vault:AGENT_KEY" }}
[[projects]]
name = "farm"
path = "{repo}"
[[webhooks]]
name = "ops"
url = "vault:OPS_URL"
headers = {{ Authorization = "vault:OPS_AUTH" }}
[[alerts.routes]]
interface = "ops"
channel = "ops"
min_severity = "info"
[telegram]
token = "vault:TG"
base_url = "http://127.0.0.1:{closed}/bot"
[slack]
bot_token = "vault:SLACK_BOT"
app_token = "vault:SLACK_APP"
signing_secret = "vault:SLACK_SIGNING"
api_url = "{slack.api_url}"
[discord]
token = "vault:DISCORD"
api_base = "{discord.api_base}"
"""
        )
        for name, value in values.items():
            assert (await run("secret", "set", name, stdin=value)).returncode == 0
        log_file = tmp_path / "state" / "farmbot.log"
        try:
            started = await run("start", "--log-format", "json", "--verbose")
            assert started.returncode == 0, started.stderr
            await slack.wait_for_connections(1, timeout=20)  # the tokens were used
            await discord.wait_identified(timeout=20)
            assert (await run("cmd", "/spawn architect")).returncode == 0
            await retry_until(
                lambda: "alert 1 to ops:ops failed" in log_file.read_text(),
                timeout=20,
                message="a failed webhook delivery in the log",
            )
            status = await run("status")
            assert status.returncode == 0 and "architect" in status.stdout, status.stderr
            assert (await run("cmd", "/alerts")).returncode == 0
            key = (tmp_path / "state" / "local-key").read_text().strip()
            for path in ("/api/status", "/readyz"):
                outputs.append(await asyncio.to_thread(get, path, key))
            metrics = await asyncio.to_thread(get, "/metrics", values["METRICS"])
            assert 'farmbot_interface_up{interface="slack"} 1.0' in metrics
            assert 'farmbot_interface_up{interface="discord"} 1.0' in metrics
            outputs.append(metrics)
            listed = await run("secret", "list")
            names = sorted(line.split()[0] for line in listed.stdout.splitlines()[1:])
            assert names == sorted(values)
            assert (await run("logs", "-n", "1000")).returncode == 0
        finally:
            await run("stop")
            state = lock_state(tmp_path / "state")
            if state.running and state.pid:
                os.kill(state.pid, signal.SIGKILL)
    vault_file = tmp_path / "state" / "vault.json"  # and the error about a tampered secret
    doc = json.loads(vault_file.read_text())
    doc["secrets"]["OPS_URL"]["nonce"] = doc["secrets"]["OPS_AUTH"]["nonce"]
    vault_file.write_text(json.dumps(doc))
    tampered = await run("status")
    assert (tampered.returncode, tampered.stderr) == (
        2,
        f"config: webhooks[0].url: secret 'OPS_URL' cannot be decrypted: {vault_file} was "
        "altered or damaged\n",
    )

    log = (tmp_path / "state" / "farmbot.log").read_text()
    assert "cannot reach Telegram" in log and "ClientConnectorError" in log  # it did fail
    leaks = [
        (name, where)
        for name, value in values.items()
        for where, text in [("outputs", "\n".join(outputs))]
        + [(str(p), p.read_bytes().decode(errors="replace")) for p in state_files(tmp_path)]
        if value in text or value.split("/")[-1] in text
    ]
    assert leaks == []


def state_files(tmp_path: Path) -> list[Path]:
    return [p for p in (tmp_path / "state").rglob("*") if p.is_file()]


def test_secret_set_on_a_terminal_does_not_echo_the_value(tmp_path: Path) -> None:
    config = tmp_path / "farmbot.toml"
    config.write_text('[server]\nstate_dir = "state"\n')
    environ = {k: x for k, x in os.environ.items() if not k.startswith("FARMBOT_")}
    argv = [sys.executable, "-m", "farmbot", "--config", str(config), "secret", "set", "TG"]
    pid, terminal = pty.fork()  # the child's controlling terminal is a real pty
    if pid == 0:  # pragma: no cover - the child
        os.execve(sys.executable, argv, environ)
    try:
        screen = read_until(terminal, b"(not shown): ")
        assert screen.endswith(b"value of secret TG (not shown): ")
        os.write(terminal, SECRETS["TG_TOKEN"].encode() + b"\n")
        screen += read_until(terminal, b"restart farmbot to use it)")
    finally:
        _, status = os.waitpid(pid, 0)
        os.close(terminal)
    assert os.waitstatus_to_exitcode(status) == 0
    assert SECRETS["TG_TOKEN"].encode() not in screen  # typed, never shown
    assert b"stored secret 'TG'" in screen
    assert Vault(tmp_path / "state", {}).get("TG") == SECRETS["TG_TOKEN"]


def read_until(fd: int, marker: bytes, timeout: float = 20) -> bytes:
    seen, deadline = b"", time.monotonic() + timeout
    while marker not in seen:
        ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
        assert ready, f"timed out waiting for {marker!r}; saw {seen!r}"
        try:
            chunk = os.read(fd, 1024)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        seen += chunk
    return seen


def test_vault_errors_on_the_command_line_are_one_line(tmp_path: Path) -> None:
    config = tmp_path / "farmbot.toml"
    config.write_text('[server]\nstate_dir = "state"\n')
    assert farmbot_cli(config, "secret", "set", "TG", stdin="s3cret-1\n").returncode == 0
    wrong = {"FARMBOT_VAULT_KEY": new_key()}
    cases = [
        (["secret", "set", "bad name"], {}, "x", "farmbot: invalid secret name 'bad name'"),
        (["secret", "set", "EMPTY"], {}, "\n", "farmbot: secret 'EMPTY': the value is empty"),
        (["secret", "rm", "TX"], {}, None, "farmbot: no secret 'TX' in the vault"),
        (["secret", "rotate-key"], wrong, None, "farmbot: wrong vault key: the key from $FAR"),
        (["secret", "set", "TG"], wrong, "s3cret-2", "farmbot: cannot read secret 'TG': wrong"),
        (["secret", "list"], {"FARMBOT_VAULT_KEY": "nope"}, None, "farmbot: the vault key in"),
        (["secret", "rotate-key", "--new-key-file", "k"], {}, None, "farmbot: the key is /"),
    ]
    for args, env, stdin, start in cases:
        done = farmbot_cli(config, *args, env=env, stdin=stdin)
        assert done.returncode == 1 and done.stdout == "", (args, done)
        assert done.stderr.startswith(start) and done.stderr.count("\n") == 1, (args, done)
        assert "s3cret" not in done.stderr
    assert Vault(tmp_path / "state", {}).get("TG") == "s3cret-1"


def test_the_vault_imports_nothing_of_farmbot_but_its_errors() -> None:
    tree = ast.parse(Path(v.__file__).read_text())
    imported = {
        node.module if isinstance(node, ast.ImportFrom) else alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in node.names
    }
    assert {m for m in imported if m and m.startswith("farmbot")} == {"farmbot.errors"}
