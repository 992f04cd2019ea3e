"""The configuration loader: defaults, validation messages, secrets, profiles, the example."""

from __future__ import annotations

import stat
import subprocess
from collections.abc import Mapping
from pathlib import Path

import pytest

from farmbot.config import Config, find_config_path, load_config, resolve_secret, write_example
from farmbot.config.schema import ProjectConfig, builtin_profiles
from farmbot.errors import ConfigError
from farmbot.models import Role

REPO = Path(__file__).resolve().parent.parent
PACKAGED_EXAMPLE = REPO / "src" / "farmbot" / "config" / "farmbot.example.toml"
REPO_EXAMPLE = REPO / "config" / "farmbot.toml"


def git_init(path: Path) -> Path:
    subprocess.run(["git", "init", "-q", str(path)], check=True)
    return path


def load(tmp_path: Path, toml: str, environ: Mapping[str, str] | None = None) -> Config:
    """Write ``toml`` to ``tmp_path/etc/farmbot.toml`` and load it with cwd ``tmp_path``."""
    path = tmp_path / "etc" / "farmbot.toml"
    path.parent.mkdir(exist_ok=True)
    path.write_text(toml)
    return load_config(path, environ or {}, tmp_path)


def failure(tmp_path: Path, toml: str, environ: Mapping[str, str] | None = None) -> str:
    """The one-line message loading ``toml`` fails with."""
    with pytest.raises(ConfigError) as info:
        load(tmp_path, toml, environ)
    message = str(info.value)
    assert "\n" not in message and message.startswith("config: ")
    return message


# -- defaults and projects ---------------------------------------------------------------


def test_no_file_outside_git_runs_on_defaults_without_projects(tmp_path: Path) -> None:
    config = load_config(None, {}, tmp_path)
    assert config.projects == ()
    assert config.source is None
    assert config.server.port == 8765 and config.tmux.socket == "farmbot"
    assert config.supervisor.default_agent == "demo"
    assert sorted(config.agents) == sorted(builtin_profiles())
    assert config.users == ()


def test_no_file_inside_git_gives_one_default_project(tmp_path: Path) -> None:
    git_init(tmp_path)
    config = load_config(None, {}, tmp_path)
    assert config.projects == (ProjectConfig(name="default", path=tmp_path),)


def test_missing_git_counts_as_not_a_work_tree(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    git_init(tmp_path)
    monkeypatch.setenv("PATH", str(tmp_path / "no-bin"))
    assert load_config(None, {}, tmp_path).projects == ()


def test_file_without_projects_inside_git_gives_default_project(tmp_path: Path) -> None:
    git_init(tmp_path)
    config = load(tmp_path, "[server]\nport = 9000\n")
    assert config.server.port == 9000
    assert [p.name for p in config.projects] == ["default"]


def test_configured_projects_replace_the_default(tmp_path: Path) -> None:
    git_init(tmp_path)
    (tmp_path / "etc" / "repo").mkdir(parents=True)
    config = load(
        tmp_path,
        '[[projects]]\nname = "web"\npath = "repo"\nverify = "make test"\nagent = "claude"\n'
        "max_builders = 3\n",
    )
    assert config.projects == (
        ProjectConfig(
            name="web",
            path=tmp_path / "etc" / "repo",
            verify="make test",
            agent="claude",
            max_builders=3,
        ),
    )


def test_paths_are_relative_to_the_config_file_and_expand_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    (tmp_path / "home" / "src" / "app").mkdir(parents=True)
    (tmp_path / "etc" / "repo").mkdir(parents=True)
    (tmp_path / "repo").mkdir()  # same name next to cwd: must not be picked
    config = load(
        tmp_path,
        '[server]\nstate_dir = "state"\n'
        '[[projects]]\nname = "a"\npath = "repo"\n'
        '[[projects]]\nname = "b"\npath = "~/src/app"\n',
    )
    assert config.server.state_dir == tmp_path / "etc" / "state"
    assert [p.path for p in config.projects] == [
        tmp_path / "etc" / "repo",
        tmp_path / "home" / "src" / "app",
    ]


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        (
            "~nosuchuser-farmbot/x",
            "cannot expand ~ in '~nosuchuser-farmbot/x': no such user or home directory",
        ),
        ("a\\u0000b", "not a usable path 'a\\x00b': embedded null byte"),
    ],
)
def test_an_unusable_path_is_a_config_error_naming_the_key(
    tmp_path: Path, path: str, expected: str
) -> None:
    message = failure(tmp_path, f'[[projects]]\nname = "a"\npath = "{path}"')
    assert message == f"config: projects[0].path: {expected}"


def test_users_and_roles(tmp_path: Path) -> None:
    config = load(
        tmp_path,
        '[users.alice]\nrole = "admin"\ntelegram = 42\nweb = true\n'
        '[users.bob]\nrole = "viewer"\nslack = "U1"\ndiscord = 7\n',
    )
    alice, bob = config.users
    assert (alice.name, alice.role, alice.ids, alice.web) == (
        "alice",
        Role.ADMIN,
        {"telegram": 42},
        True,
    )
    assert (bob.role, bob.ids, bob.web) == (Role.VIEWER, {"slack": "U1", "discord": 7}, False)


# -- one line naming the key ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("toml", "expected"),
    [
        ('[server]\nport = "80a"', 'server.port: expected an integer, got string "80a"'),
        ("[server]\nport = true", "server.port: expected an integer, got boolean true"),
        ("[server]\nport = 0", "server.port: must be between 1 and 65535, got 0"),
        ("[server]\nhost = 1.5", "server.host: expected a string, got float 1.5"),
        ("server = 5", "server: expected a table, got integer 5"),
        (
            '[tmux]\nsocket = "a/b"',
            "tmux.socket: must be a non-empty name without '/' or whitespace",
        ),
        (
            "[supervisor]\ntick_seconds = 0",
            "supervisor.tick_seconds: must be greater than 0, got 0",
        ),
        ("[supervisor]\nmax_builders = 0", "supervisor.max_builders: must be at least 1, got 0"),
        (
            "[supervisor]\npermission_hold = 871",
            "supervisor.permission_hold: at most 870 s, got 871: `farmbot hook` gives up on its "
            "answer after 900 s, so a longer hold would answer a hook nobody listens to any more",
        ),
        (
            "[supervisor]\npermission_hold = -1",
            "supervisor.permission_hold: must be 0 or more, got -1",
        ),
        (
            "[supervisor]\nprompt_max_bytes = 10",
            "supervisor.prompt_max_bytes: must be at least 64, got 10",
        ),
        ('[projects]\nname = "x"', "projects: expected an array of tables ([[...]]), got table"),
        ('[[projects]]\npath = "."', "projects[0].name: missing"),
        (
            '[[projects]]\nname = "Web App"\npath = "."',
            "projects[0].name: invalid name 'Web App': use 1-32 of a-z, 0-9, '-' and '_', "
            "starting alphanumeric",
        ),
        (
            '[[projects]]\nname = "a"\npath = "."\n[[projects]]\nname = "a"\npath = "."',
            "projects[1].name: duplicate project name 'a' (also projects[0].name)",
        ),
        ("[users.bob]\ntelegram = 1", "users.bob.role: missing"),
        (
            '[users.bob]\nrole = "root"',
            "users.bob.role: unknown role 'root' (use viewer, operator or admin)",
        ),
        (
            '[users.a]\nrole = "admin"\nweb = true\n[users.b]\nrole = "viewer"\nweb = true',
            "users.b.web: only one user may have web = true (already users.a)",
        ),
        (
            '[users.a]\nrole = "admin"\ntelegram = 5\n[users.b]\nrole = "viewer"\ntelegram = 5',
            "users.b.telegram: this telegram identity is already claimed by users.a",
        ),
        (
            '[users.a]\nrole = "admin"\nslack = "U1"\n[users.b]\nrole = "viewer"\nslack = "U1"',
            "users.b.slack: this slack identity is already claimed by users.a",
        ),
    ],
)
def test_invalid_values_fail_with_one_line_naming_the_key(
    tmp_path: Path, toml: str, expected: str
) -> None:
    assert failure(tmp_path, toml) == f"config: {expected}"


@pytest.mark.parametrize("hold", [0, 870])
def test_permission_hold_may_be_off_or_up_to_its_limit(tmp_path: Path, hold: int) -> None:
    config = load(tmp_path, f"[supervisor]\npermission_hold = {hold}\n")
    assert config.supervisor.permission_hold == hold


def test_the_longest_permission_hold_ends_before_every_hook_gives_up() -> None:
    from farmbot import hook, hooks_install
    from farmbot.config.loader import MAX_PERMISSION_HOLD

    # `farmbot hook` (a command hook) waits HOLD_TIMEOUT; Claude Code waits for the
    # command, or for an http hook it posts itself, PERMISSION_TIMEOUT.
    assert MAX_PERMISSION_HOLD < hook.HOLD_TIMEOUT < hooks_install.PERMISSION_TIMEOUT


def test_project_path_must_be_an_existing_directory(tmp_path: Path) -> None:
    message = failure(tmp_path, '[[projects]]\nname = "a"\npath = "nowhere"')
    assert message == f"config: projects[0].path: {tmp_path / 'etc' / 'nowhere'}: no such directory"
    (tmp_path / "etc" / "file").write_text("")
    message = failure(tmp_path, '[[projects]]\nname = "a"\npath = "file"')
    assert message.endswith("file: not a directory")


@pytest.mark.parametrize(
    ("toml", "expected"),
    [
        ("[server]\nprot = 1", "server.prot: unknown key (did you mean 'port'?)"),
        ("[sever]\nport = 1", "sever: unknown key (did you mean 'server'?)"),
        ("[server]\nzzz = 1", "server.zzz: unknown key"),
        (
            '[[projects]]\nname = "a"\npath = "."\npaht = "."',
            "projects[0].paht: unknown key (did you mean 'path'?)",
        ),
        ('[agents.claude]\nidle = "x"', "agents.claude.idle: unknown key"),
        (
            '[agents.claude]\nbusy_patern = "x"',
            "agents.claude.busy_patern: unknown key (did you mean 'busy_pattern'?)",
        ),
        (
            '[users.a]\nrole = "admin"\nwebb = true',
            "users.a.webb: unknown key (did you mean 'web'?)",
        ),
    ],
)
def test_unknown_keys_are_refused_with_a_suggestion_when_close(
    tmp_path: Path, toml: str, expected: str
) -> None:
    assert failure(tmp_path, toml) == f"config: {expected}"


def test_toml_syntax_error_is_one_line_naming_the_file(tmp_path: Path) -> None:
    message = failure(tmp_path, "[server]\nport = \n")
    path = tmp_path / "etc" / "farmbot.toml"
    assert message == f"config: {path}: invalid TOML: Invalid value (at line 2, column 8)"
    assert "Traceback" not in message


# -- environment and secrets -------------------------------------------------------------


def test_env_references_are_resolved(tmp_path: Path) -> None:
    config = load(
        tmp_path,
        '[server]\nhost = "env:FB_HOST"\n[agents.claude]\nenv = { KEY = "env:FB_KEY", X = "1" }\n',
        {"FB_HOST": "0.0.0.0", "FB_KEY": "k-123"},
    )
    assert config.server.host == "0.0.0.0"
    assert config.agents["claude"].env == {"KEY": "k-123", "X": "1"}


def test_missing_env_variable_names_key_and_variable(tmp_path: Path) -> None:
    message = failure(tmp_path, '[server]\nhost = "env:FB_HOST"')
    assert message == "config: server.host: environment variable FB_HOST is not set"


def test_env_values_never_appear_in_messages(tmp_path: Path) -> None:
    secret = "s3cret/value with spaces"
    message = failure(tmp_path, '[tmux]\nsocket = "env:SOCK"', {"SOCK": secret})
    assert message.startswith("config: tmux.socket: ")
    assert secret not in message
    message = failure(tmp_path, '[users.a]\nrole = "env:ROLE"', {"ROLE": "hunter2"})
    assert message == "config: users.a.role: unknown role $ROLE (use viewer, operator or admin)"


def test_wrongly_typed_webhook_headers_are_not_echoed(tmp_path: Path) -> None:
    hook = '[[webhooks]]\nname = "ops"\nurl = "https://x"\n'
    message = failure(tmp_path, hook + 'headers = "Authorization: Bearer s3cret"')
    assert message == (
        'config: webhooks[0].headers: expected a table (like { Authorization = "env:NAME" }),'
        " got string"
    )
    message = failure(tmp_path, hook + "headers = { Authorization = 123456 }")
    assert message == "config: webhooks[0].headers.Authorization: expected a string, got integer"
    # An ordinary key still shows the wrong value: that helps.
    message = failure(tmp_path, '[server]\nport = "8080"')
    assert message == 'config: server.port: expected an integer, got string "8080"'


def test_resolve_secret_reads_the_environment() -> None:
    assert resolve_secret("env:TOKEN", "telegram.token", {"TOKEN": "123:abc"}) == "123:abc"


@pytest.mark.parametrize(
    ("value", "environ", "problem"),
    [
        (
            "123:abc-literal",
            {},
            'secrets are never written in the file; use "env:NAME" or "vault:NAME"',
        ),
        ("env:TOKEN", {}, "environment variable TOKEN is not set"),
        ("env:TOKEN", {"TOKEN": ""}, "environment variable TOKEN is empty"),
        (123456, {}, 'expected a string "env:NAME" or "vault:NAME", got integer'),
    ],
)
def test_resolve_secret_refuses_without_echoing_the_secret(
    value: object, environ: Mapping[str, str], problem: str
) -> None:
    with pytest.raises(ConfigError) as info:
        resolve_secret(value, "telegram.token", environ)
    message = str(info.value)
    assert message == f"config: telegram.token: {problem}"
    secrets = [str(value), *environ.values()]
    assert not [s for s in secrets if s and not s.startswith("env:") and s in message]


# -- agent profiles ------------------------------------------------------------------------


def test_profile_keys_merge_over_the_builtin(tmp_path: Path) -> None:
    config = load(tmp_path, '[agents.claude]\nidle_pattern = "^READY$"\n')
    builtin = builtin_profiles()["claude"]
    claude = config.agents["claude"]
    assert claude.idle_pattern == "^READY$"
    assert (claude.command, claude.busy_pattern, claude.waiting_pattern) == (
        builtin.command,
        builtin.busy_pattern,
        builtin.waiting_pattern,
    )
    assert set(config.agents) == set(builtin_profiles())


def test_empty_pattern_switches_a_builtin_pattern_off(tmp_path: Path) -> None:
    config = load(tmp_path, '[agents.claude]\nbusy_pattern = ""\n')
    assert config.agents["claude"].busy_pattern is None


def test_new_profile_needs_a_command(tmp_path: Path) -> None:
    message = failure(tmp_path, '[agents.mine]\nidle_pattern = "^> $"')
    assert message == "config: agents.mine.command: missing; a new agent profile needs a command"
    config = load(tmp_path, '[agents.mine]\ncommand = "mine --chat"\n')
    assert config.agents["mine"].command == "mine --chat"
    assert config.agents["mine"].name == "mine"
    assert "claude" in config.agents


def test_bad_regex_names_the_pattern_key(tmp_path: Path) -> None:
    message = failure(tmp_path, '[agents.claude]\nidle_pattern = "[unclosed"')
    assert message.startswith("config: agents.claude.idle_pattern: invalid regular expression: ")


@pytest.mark.parametrize(
    ("pattern", "problem"),
    [
        ("a{4294967296}", "invalid regular expression: the repetition number is too large"),
        ("(" * 2000 + ")" * 2000, "invalid regular expression: nested too deeply"),
    ],
)
def test_a_regex_python_cannot_compile_is_a_config_error(
    tmp_path: Path, pattern: str, problem: str
) -> None:
    message = failure(tmp_path, f'[agents.claude]\nidle_pattern = "{pattern}"')
    assert message == f"config: agents.claude.idle_pattern: {problem}"


@pytest.mark.parametrize(
    ("prompt", "problem"),
    [
        ("work on {issue}", "unknown placeholder {issue}; only {n} and {project} may be used"),
        ("work on {}", "unknown placeholder {}; only {n} and {project} may be used"),
        ("work on {n.real}", "unknown placeholder {n.real}; only {n} and {project} may be used"),
        ("work on {n", "malformed braces: expected '}' before end of string"),
        ("a } b", "malformed braces: Single '}' encountered in format string"),
    ],
)
def test_bad_builder_prompt_placeholders(tmp_path: Path, prompt: str, problem: str) -> None:
    message = failure(tmp_path, f'[agents.claude]\nbuilder_prompt = "{prompt}"')
    assert message.startswith(f"config: agents.claude.builder_prompt: {problem}")


def test_builder_prompt_may_use_n_project_and_literal_braces(tmp_path: Path) -> None:
    prompt = "#{n} in {project}; JSON looks like {{}}"
    config = load(tmp_path, f'[agents.claude]\nbuilder_prompt = "{prompt}"\n')
    assert config.agents["claude"].builder_prompt.format(n=7, project="p") == (
        "#7 in p; JSON looks like {}"
    )


def test_unknown_profile_reference_lists_known_and_suggests(tmp_path: Path) -> None:
    message = failure(tmp_path, '[[projects]]\nname = "a"\npath = "."\nagent = "cluade"')
    assert message == (
        "config: projects[0].agent: unknown agent profile 'cluade' "
        "(known: aider, claude, codex, demo); did you mean 'claude'?"
    )
    message = failure(tmp_path, '[supervisor]\ndefault_agent = "zzz"')
    assert message == (
        "config: supervisor.default_agent: unknown agent profile 'zzz' "
        "(known: aider, claude, codex, demo)"
    )


def test_configured_profiles_can_be_referenced(tmp_path: Path) -> None:
    config = load(tmp_path, '[supervisor]\ndefault_agent = "mine"\n[agents.mine]\ncommand = "m"\n')
    assert config.supervisor.default_agent == "mine"


# -- finding the file, the example ----------------------------------------------------------


def test_find_config_path_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    assert find_config_path(None, {}) is None
    user_file = tmp_path / ".config" / "farmbot" / "farmbot.toml"
    user_file.parent.mkdir(parents=True)
    user_file.write_text("")
    assert find_config_path(None, {}) == user_file
    env_file = tmp_path / "env.toml"
    env_file.write_text("")
    assert find_config_path(None, {"FARMBOT_CONFIG": str(env_file)}) == env_file
    flag_file = tmp_path / "flag.toml"
    flag_file.write_text("")
    assert find_config_path(flag_file, {"FARMBOT_CONFIG": str(env_file)}) == flag_file


def test_find_config_path_refuses_missing_files(tmp_path: Path) -> None:
    missing = tmp_path / "nope.toml"
    with pytest.raises(ConfigError, match=r"^config: .*nope\.toml: no such file$"):
        find_config_path(str(missing), {})
    with pytest.raises(ConfigError, match=r"nope\.toml: no such file \(from \$FARMBOT_CONFIG\)$"):
        find_config_path(None, {"FARMBOT_CONFIG": str(missing)})


def test_example_copies_are_identical() -> None:
    assert PACKAGED_EXAMPLE.read_bytes() == REPO_EXAMPLE.read_bytes()


def test_example_loads_as_is(tmp_path: Path) -> None:
    config = load_config(REPO_EXAMPLE, {}, tmp_path)
    assert config.source == REPO_EXAMPLE
    # A project is opt-in: one declared at "." with `verify = "make test"` failed QA at once.
    assert config.projects == ()
    assert {u.name: u.role for u in config.users} == {
        "alice": Role.ADMIN,
        "bob": Role.OPERATOR,
        "carol": Role.VIEWER,
    }
    example = PACKAGED_EXAMPLE.read_text()
    assert "[telegram]" in example and "[slack]" in example  # placeholders, commented out
    assert 'token = "env:' in example


def test_write_example_writes_and_refuses_to_overwrite(tmp_path: Path) -> None:
    target = tmp_path / "new" / "dir" / "farmbot.toml"
    assert write_example(target) == target
    assert target.read_bytes() == PACKAGED_EXAMPLE.read_bytes()
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    target.write_text("# mine\n")
    with pytest.raises(ConfigError) as info:
        write_example(target)
    assert str(info.value) == f"config: {target}: already exists; use --force to overwrite"
    assert target.read_text() == "# mine\n"
    write_example(target, force=True)
    assert target.read_bytes() == PACKAGED_EXAMPLE.read_bytes()
    load_config(target, {}, tmp_path)  # the written file loads where it lands


def test_an_alert_route_to_an_unconfigured_chat_is_refused_at_start(tmp_path: Path) -> None:
    route = '[[alerts.routes]]\ninterface = "{}"\nchannel = "-100123"\n'
    assert failure(tmp_path, route.format("telegram")) == (
        "config: alerts.routes[0].interface: 'telegram' is not configured; add a [telegram] section"
    )
    assert failure(tmp_path, route.format("discord")) == (
        "config: alerts.routes[0].interface: 'discord' is not configured; add a [discord] section"
    )


# -- security: agents' environment, run_as, gates --------------------------------------


def test_security_keys_are_read(tmp_path: Path) -> None:
    config = load(
        tmp_path,
        """
[supervisor]
pass_env = ["ANTHROPIC_API_KEY", "HTTPS_PROXY"]
prompt_timeout = 600

[agents.demo]
clear_keys = []
input_pattern = '^> (.*)$'
run_as = "root"

[users.alice]
role = "admin"

[gates]
approvers = ["alice", "local"]
interfaces = ["telegram", "scheduler"]
""",
    )
    assert config.supervisor.pass_env == ("ANTHROPIC_API_KEY", "HTTPS_PROXY")
    assert config.supervisor.prompt_timeout == 600
    demo = config.agents["demo"]
    assert (demo.clear_keys, demo.input_pattern, demo.run_as) == ((), "^> (.*)$", "root")
    assert config.gates.approvers == ("alice", "local")
    assert config.gates.interfaces == ("telegram", "scheduler")
    assert load(tmp_path, "").agents["claude"].clear_keys == ("C-u",)


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        (
            '[supervisor]\npass_env = ["NOT-A-NAME"]',
            "config: supervisor.pass_env: 'NOT-A-NAME' is not a valid environment variable name",
        ),
        (
            '[agents.demo]\nrun_as = "no-such-user-here"',
            "config: agents.demo.run_as: no Unix user 'no-such-user-here' on this machine "
            "(create it first: see the README)",
        ),
        (
            '[users.alice]\nrole = "admin"\n[gates]\napprovers = ["alcie"]',
            "config: gates.approvers: unknown user 'alcie'; did you mean 'alice'?",
        ),
        (
            '[gates]\ninterfaces = ["telegrm"]',
            "config: gates.interfaces: unknown interface 'telegrm' "
            "(one of: web, cli, telegram, slack, discord, scheduler)",
        ),
        ("[agents.demo]\nclear_keys = [1]", "config: agents.demo.clear_keys: expected an array"),
    ],
    ids=["pass-env", "run-as", "approver", "interface", "clear-keys"],
)
def test_security_keys_name_what_is_wrong(tmp_path: Path, toml: str, message: str) -> None:
    assert failure(tmp_path, toml).startswith(message)
