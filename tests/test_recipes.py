"""The scheduling and CI recipes in examples/ are checked, not just shipped.

- Syntax: YAML parses with the expected keys, the crontab lines have five time fields and
  a command, the systemd units pass ``systemd-analyze verify`` (skipped, with the reason
  printed, where the tool is missing).
- Commands: every ``learnexit ...`` invocation in a recipe is a real command with real
  options (parsed by the Click tree of the application itself).
- Behaviour: the recipes' shell snippets run for real against the example LMS built in
  tmp_path (``learnexit`` and the few tools they call are put on PATH), and their exit-code
  handling does what the comments promise.  While a command is still missing the test
  skips, naming it, so it becomes real as the command lands.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer
import yaml

from learnexit.cli import app

ROOT = Path(__file__).resolve().parents[1]
SCHED = ROOT / "examples" / "scheduling"
CI_DIR = ROOT / "examples" / "ci"
CRONTAB = SCHED / "crontab"
SERVICE = SCHED / "learnexit-purge.service"
TIMER = SCHED / "learnexit-purge.timer"
K8S = SCHED / "kubernetes-cronjob.yaml"
GITHUB = CI_DIR / "github-actions.yml"
GITLAB = CI_DIR / "gitlab-ci.yml"
INSTALLED_LEARNEXIT = "/opt/learnexit/venv/bin/learnexit"

PURGE_ARGV = ["--log-format", "json", "purge", "--due", "--yes", "--json"]
STATUS_ARGV = ["--log-format", "json", "status", "--check", "--json"]

ROOT_COMMAND = typer.main.get_command(app)


# --------------------------------------------------------------------------- helpers


def _commands() -> dict[str, Any]:
    return dict(getattr(ROOT_COMMAND, "commands", {}))


def require_commands(*names: str) -> None:
    """Skip (saying which) while another engineer's command has not landed yet."""
    missing = [n for n in names if n not in _commands()]
    if missing:
        pytest.skip(f"command(s) not implemented yet: {', '.join(missing)}")


_CRON_FIELD = re.compile(r"^(\*|\d+(-\d+)?|[a-z]{3}(-[a-z]{3})?)(/\d+)?(,(\d+(-\d+)?|[a-z]{3}))*$", re.IGNORECASE)
_ENV_LINE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*\s*=")


def cron_entries(text: str, *, include_commented: bool = False) -> list[tuple[list[str], str]]:
    """(five time fields, command) for every crontab entry; commented alternatives too if asked."""
    entries = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line:
            continue
        if line.startswith("#"):
            if not include_commented:
                continue
            line = line.lstrip("#").strip()
            parts = line.split(None, 5)
            if len(parts) < 6 or not all(_CRON_FIELD.match(p) for p in parts[:5]) or "learnexit" not in parts[5]:
                continue  # prose, not a commented-out entry
        elif _ENV_LINE.match(line):
            continue
        parts = line.split(None, 5)
        entries.append((parts[:5], parts[5] if len(parts) > 5 else ""))
    return entries


def unit_values(text: str, key: str) -> list[str]:
    return [line.split("=", 1)[1] for line in text.splitlines() if line.startswith(f"{key}=")]


_REDIRECT = re.compile(r"\d*(?:>>|>&|>|<)\s*(?:\d\b|[^\s;&|]+)")
_OPERATORS = {";", "&&", "||", "|", "&", "(", ")", ";;", "\n"}


def learnexit_invocations(script: str) -> list[list[str]]:
    """The argv (without the program) of every ``learnexit`` run by a shell snippet.

    Only words in command position count (``logger -t learnexit`` does not), redirections
    are dropped, and ``sh -c SCRIPT`` is followed into SCRIPT.
    """
    found: list[list[str]] = []
    for line in script.replace("\\\n", " ").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        lexer = shlex.shlex(_REDIRECT.sub(" ", line), posix=True, punctuation_chars=True)
        lexer.whitespace_split = True
        lexer.commenters = "#"
        try:
            tokens = list(lexer)
        except ValueError:
            continue
        at_command = True
        i = 0
        while i < len(tokens):
            tok = tokens[i]
            if tok in _OPERATORS:
                at_command = True
                i += 1
                continue
            if at_command and _ENV_LINE.match(tok):
                i += 1  # VAR=value prefix
                continue
            if at_command:
                base = os.path.basename(tok)
                if base == "learnexit":
                    argv = []
                    i += 1
                    while i < len(tokens) and tokens[i] not in _OPERATORS:
                        argv.append(tokens[i])
                        i += 1
                    found.append(argv)
                    continue
                if base in ("sh", "bash", "dash") and i + 2 < len(tokens) and tokens[i + 1] == "-c":
                    found.extend(learnexit_invocations(tokens[i + 2]))
                at_command = tok in ("then", "else", "do", "!", "exec", "time", "timeout") or tok.startswith("[")
            i += 1
    return found


class MissingCommand(Exception):
    """A recipe names a command that has not been implemented yet."""


def _root_context(argv: list[str]) -> tuple[Any, str, list[str]]:
    try:
        ctx = ROOT_COMMAND.make_context("learnexit", list(argv))
    except Exception as exc:  # noqa: BLE001 - Click's UsageError, whichever Click typer ships
        raise AssertionError(f"learnexit {shlex.join(argv)}: {exc}") from None
    rest = list(getattr(ctx, "_protected_args", None) or getattr(ctx, "protected_args", [])) + list(ctx.args)
    assert rest, f"learnexit {shlex.join(argv)}: no command"
    return ctx, rest[0], rest[1:]


def command_name(argv: list[str]) -> str:
    """The subcommand an argv runs (global options skipped)."""
    return _root_context(argv)[1]


def check_argv(argv: list[str]) -> str:
    """Parse argv with the application's own Click tree; return the subcommand's name.

    Raises AssertionError naming the unknown option, MissingCommand for a command that
    does not exist (yet).
    """
    ctx, name, rest = _root_context(argv)
    if name not in _commands():
        raise MissingCommand(name)
    try:
        _commands()[name].make_context(name, rest, parent=ctx)
    except Exception as exc:  # noqa: BLE001
        raise AssertionError(f"learnexit {shlex.join(argv)}: {exc}") from None
    return name


def yaml_docs(path: Path) -> list[Any]:
    return [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d is not None]


def cronjob() -> dict[str, Any]:
    (job,) = [d for d in yaml_docs(K8S) if d.get("kind") == "CronJob"]
    return job


def k8s_container(job: dict[str, Any]) -> dict[str, Any]:
    (container,) = job["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]
    return container


def k8s_script(container: dict[str, Any]) -> str:
    command = list(container.get("command", [])) + list(container.get("args", []))
    assert command[:2] == ["/bin/sh", "-c"], command
    return str(command[2])


def github_script() -> str:
    data = yaml.safe_load(GITHUB.read_text(encoding="utf-8"))
    steps = data["jobs"]["status"]["steps"]
    (step,) = [s for s in steps if "learnexit" in str(s.get("run", "")) and "status" in str(s.get("run", ""))]
    assert step.get("shell") == "bash"
    return str(step["run"])


def gitlab_script() -> str:
    data = yaml.safe_load(GITLAB.read_text(encoding="utf-8"))
    return "\n".join(str(line) for line in data["learnexit-status"]["script"])


def all_invocations() -> Iterator[tuple[str, list[str]]]:
    text = CRONTAB.read_text(encoding="utf-8")
    for _fields, command in cron_entries(text, include_commented=True):
        for argv in learnexit_invocations(command):
            yield "crontab", argv
    for value in unit_values(SERVICE.read_text(encoding="utf-8"), "ExecStart"):
        for argv in learnexit_invocations(value.lstrip("-@:+!")):
            yield "learnexit-purge.service", argv
    for argv in learnexit_invocations(k8s_script(k8s_container(cronjob()))):
        yield "kubernetes-cronjob.yaml", argv
    for argv in learnexit_invocations(github_script()):
        yield "github-actions.yml", argv
    for argv in learnexit_invocations(gitlab_script()):
        yield "gitlab-ci.yml", argv


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example, made the way the README makes it: `learnexit init --example DIR`."""
    from typer.testing import CliRunner

    dest = tmp_path_factory.mktemp("recipes") / "demo"
    result = CliRunner().invoke(app, ["init", "--example", str(dest)])
    assert result.exit_code == 0, result.output
    return dest


@pytest.fixture
def fresh_demo(demo: Path, tmp_path: Path) -> Path:
    """A private copy of the example (its own ledger), for tests that change state."""
    dest = tmp_path / "demo"
    shutil.copytree(demo, dest, ignore=shutil.ignore_patterns("learnexit-state.db", "exports", "certificates"))
    return dest


@pytest.fixture
def bin_dir(tmp_path: Path) -> Path:
    """PATH entries: learnexit (this checkout), python, and a logger that records its calls."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    scripts = {
        "learnexit": f'#!/bin/sh\nexec "{sys.executable}" -m learnexit "$@"\n',
        "python": f'#!/bin/sh\nexec "{sys.executable}" "$@"\n',
        "logger": f'#!/bin/sh\nprintf "%s\\n" "$*" >>"{tmp_path / "logger.calls"}"\n',
    }
    for name, body in scripts.items():
        path = bindir / name
        path.write_text(body, encoding="utf-8")
        path.chmod(0o755)
    return bindir


def shell_env(bin_dir: Path, config: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEARNEXIT_")}
    env.update(PATH=f"{bin_dir}{os.pathsep}{env.get('PATH', '/usr/bin:/bin')}", LEARNEXIT_CONFIG=str(config))
    env["LEARNEXIT_ACTOR"] = "tester@example"
    env.update(extra)
    return env


# --------------------------------------------------------------------------- syntax


def test_crontab_lines_have_five_fields_and_the_purge_command() -> None:
    text = CRONTAB.read_text(encoding="utf-8")
    active = cron_entries(text)
    assert len(active) == 1, active
    everything = cron_entries(text, include_commented=True)
    assert len(everything) == 2  # the 15-minute line and the nightly alternative
    for fields, command in everything:
        assert len(fields) == 5 and all(_CRON_FIELD.match(f) for f in fields), fields
        assert command.startswith("/"), "cron has a minimal PATH: use an absolute path"
        assert "%" not in command, "an unescaped % ends a crontab command"
        assert learnexit_invocations(command) == [PURGE_ARGV]
    assert active[0][0] == ["*/15", "*", "*", "*", "*"]
    assert everything[1][0][2:] == ["*", "*", "*"]  # nightly
    env_lines = [line for line in text.splitlines() if _ENV_LINE.match(line)]
    assert "LEARNEXIT_CONFIG=/etc/learnexit/learnexit.toml" in env_lines
    assert not any("flock" in command for _f, command in everything)


def test_kubernetes_cronjob_shape() -> None:
    docs = yaml_docs(K8S)
    assert {d["kind"] for d in docs} == {"ConfigMap", "CronJob"}
    (configmap,) = [d for d in docs if d["kind"] == "ConfigMap"]
    job = cronjob()
    spec = job["spec"]
    assert job["apiVersion"] == "batch/v1"
    assert len(spec["schedule"].split()) == 5
    assert spec["concurrencyPolicy"] == "Forbid"
    job_spec = spec["jobTemplate"]["spec"]
    assert isinstance(job_spec["backoffLimit"], int)
    assert job_spec["template"]["spec"]["restartPolicy"] == "Never"  # required by podFailurePolicy
    (rule,) = job_spec["podFailurePolicy"]["rules"]
    assert rule["action"] == "FailJob" and rule["onExitCodes"]["values"] == [2, 3]
    container = k8s_container(job)
    assert rule["onExitCodes"]["containerName"] == container["name"]
    env = {e["name"]: e for e in container["env"]}
    for secret_var in ("LEARNEXIT_STATE_URL", "LEARNEXIT_SOURCE_URL"):
        assert "secretKeyRef" in env[secret_var]["valueFrom"], secret_var
    assert env["LEARNEXIT_CONFIG"]["value"] == "/etc/learnexit/learnexit.toml"
    mounts = {m["name"]: m for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in job_spec["template"]["spec"]["volumes"]}
    assert mounts["config"]["mountPath"] == "/etc/learnexit"
    assert volumes["config"]["configMap"]["name"] == configmap["metadata"]["name"]
    assert "learnexit.toml" in configmap["data"]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert learnexit_invocations(k8s_script(container)) == [PURGE_ARGV]


def test_kubernetes_configmap_config_is_valid(tmp_path: Path) -> None:
    """The config in the ConfigMap loads (with the URLs coming from the environment)."""
    from learnexit.config import load_settings

    (configmap,) = [d for d in yaml_docs(K8S) if d["kind"] == "ConfigMap"]
    path = tmp_path / "learnexit.toml"
    path.write_text(configmap["data"]["learnexit.toml"], encoding="utf-8")
    mp = pytest.MonkeyPatch()
    try:
        mp.setenv("LEARNEXIT_SOURCE_URL", f"sqlite:///{tmp_path / 'lms.db'}")
        mp.setenv("LEARNEXIT_STATE_URL", f"sqlite:///{tmp_path / 'state.db'}")
        settings = load_settings(path)
    finally:
        mp.undo()
    assert str(settings.purge.certificates) == "/var/lib/learnexit/certificates"
    assert str(settings.export.out) == "/var/lib/learnexit/exports"


def test_ci_recipes_shape() -> None:
    gh = yaml.safe_load(GITHUB.read_text(encoding="utf-8"))
    triggers = gh.get("on", gh.get(True))  # YAML 1.1 reads a bare `on` as true
    assert len(triggers["schedule"][0]["cron"].split()) == 5
    assert "workflow_dispatch" in triggers
    job = gh["jobs"]["status"]
    assert job["env"]["LEARNEXIT_STATE_URL"] == "${{ secrets.LEARNEXIT_STATE_URL }}"
    assert learnexit_invocations(github_script()) == [STATUS_ARGV]

    gl = yaml.safe_load(GITLAB.read_text(encoding="utf-8"))
    job = gl["learnexit-status"]
    assert any("schedule" in rule["if"] for rule in job["rules"])
    assert job["artifacts"]["when"] == "always"
    assert learnexit_invocations(gitlab_script()) == [STATUS_ARGV]


def test_every_recipe_command_is_a_real_command_with_real_options() -> None:
    invocations = list(all_invocations())
    assert {where for where, _ in invocations} == {
        "crontab",
        "learnexit-purge.service",
        "kubernetes-cronjob.yaml",
        "github-actions.yml",
        "gitlab-ci.yml",
    }
    missing = set()
    for where, argv in invocations:
        try:
            check_argv(argv)
        except MissingCommand as exc:
            missing.add(str(exc))
        except AssertionError as exc:
            raise AssertionError(f"{where}: {exc}") from None
    if missing:
        pytest.skip(f"command(s) not implemented yet, options unchecked: {', '.join(sorted(missing))}")


def test_check_argv_rejects_unknown_options() -> None:
    """The checker itself: an option that does not exist fails, a command that does not skips."""
    assert check_argv(["--log-format", "json", "inspect", "acme", "--json"]) == "inspect"
    with pytest.raises(AssertionError, match="--frobnicate"):
        check_argv(["inspect", "acme", "--frobnicate"])
    with pytest.raises(AssertionError, match="--nope"):
        check_argv(["--nope", "inspect", "acme"])
    assert learnexit_invocations("logger -t learnexit hi; x=1 /a/b/learnexit inspect acme >/dev/null 2>&1") == [
        ["inspect", "acme"]
    ]
    assert learnexit_invocations("sh -c 'learnexit init --example demo'") == [["init", "--example", "demo"]]


# --------------------------------------------------------------------------- systemd


def _systemd_analyze() -> str:
    tool = shutil.which("systemd-analyze")
    if tool is None:
        reason = "systemd-analyze not installed (apt-get install systemd): unit files not verified"
        print(f"SKIP: {reason}")
        pytest.skip(reason)
    return tool


def test_systemd_units_verify(tmp_path: Path) -> None:
    tool = _systemd_analyze()
    service_text = SERVICE.read_text(encoding="utf-8")
    assert unit_values(service_text, "Type") == ["oneshot"]
    assert unit_values(service_text, "SuccessExitStatus") == ["4"]
    assert unit_values(service_text, "EnvironmentFile") == ["/etc/learnexit/learnexit.env"]
    assert unit_values(service_text, "StandardError") == ["journal"]
    assert unit_values(TIMER.read_text(encoding="utf-8"), "Unit") == ["learnexit-purge.service"]
    # verify checks that ExecStart= exists: point it at this checkout's learnexit
    exe = tmp_path / "learnexit"
    exe.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m learnexit "$@"\n', encoding="utf-8")
    exe.chmod(0o755)
    (tmp_path / SERVICE.name).write_text(service_text.replace(INSTALLED_LEARNEXIT, str(exe)), encoding="utf-8")
    shutil.copy(TIMER, tmp_path / TIMER.name)
    result = subprocess.run(
        [tool, "verify", SERVICE.name, TIMER.name], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    noise = [
        line
        for line in result.stderr.splitlines()
        # verify also judges the host's own units; only ours matter here
        if "learnexit-purge" in line
    ]
    assert result.returncode == 0 and not noise, result.stderr


def test_systemd_service_exposure_is_low(tmp_path: Path) -> None:
    tool = _systemd_analyze()
    shutil.copy(SERVICE, tmp_path / SERVICE.name)
    result = subprocess.run(
        [tool, "security", "--offline=true", SERVICE.name], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    if result.returncode != 0 and "offline" in result.stderr:
        pytest.skip(f"this systemd-analyze has no --offline: {result.stderr.strip()[:200]}")
    match = re.search(r"Overall exposure level for \S+: ([\d.]+)", result.stdout + result.stderr)
    assert match, result.stdout + result.stderr
    assert float(match.group(1)) <= 2.0, result.stdout


@pytest.mark.parametrize(
    ("status", "expected"),
    [("0", None), ("4", None), ("3", "user.warning"), ("1", "user.crit"), ("2", "user.crit")],
)
def test_systemd_exit_code_alerting(bin_dir: Path, tmp_path: Path, status: str, expected: str | None) -> None:
    (script,) = [v for v in unit_values(SERVICE.read_text(encoding="utf-8"), "ExecStopPost")]
    # systemd substitutes $VAR in Exec lines itself; $$ passes a literal $ on to sh
    assert "$EXIT_STATUS" not in script.replace("$$", ""), "write $$EXIT_STATUS so that sh expands it"
    assert "%" not in script, "% starts a systemd specifier"
    argv = shlex.split(script.replace("$$", "$"))
    assert argv[:2] == ["/bin/sh", "-c"]
    env = dict(os.environ, PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}", EXIT_STATUS=status)
    subprocess.run(["/bin/sh", "-c", argv[2]], env=env, check=True, timeout=30)
    calls = (tmp_path / "logger.calls").read_text(encoding="utf-8") if (tmp_path / "logger.calls").exists() else ""
    if expected is None:
        assert calls == ""
    else:
        assert f"-p {expected}" in calls and f"exit {status}" in calls


# --------------------------------------------------------------------------- running the recipes


def test_recipe_commands_run_on_the_example(demo: Path) -> None:
    """Every learnexit command of every recipe succeeds on the example (nothing is due)."""
    from typer.testing import CliRunner

    invocations = list(all_invocations())
    require_commands(*sorted({command_name(argv) for _, argv in invocations}))
    runner = CliRunner()
    for where, argv in invocations:
        result = runner.invoke(app, argv, env={"LEARNEXIT_CONFIG": str(demo / "learnexit.toml")})
        assert result.exit_code == 0, f"{where}: learnexit {shlex.join(argv)}\n{result.stdout}\n{result.stderr}"
        json.loads(result.stdout)  # exactly one JSON document
        for line in result.stderr.splitlines():
            assert isinstance(json.loads(line), dict), line


def _cron_command(command: str, tmp_path: Path) -> str:
    logs = tmp_path / "log"
    logs.mkdir(exist_ok=True)
    return command.replace(INSTALLED_LEARNEXIT, "learnexit").replace("/var/log/learnexit", str(logs))


def test_crontab_line_runs_quietly_when_all_is_well(fresh_demo: Path, bin_dir: Path, tmp_path: Path) -> None:
    require_commands("purge")
    ((_fields, command),) = cron_entries(CRONTAB.read_text(encoding="utf-8"))
    env = shell_env(bin_dir, fresh_demo / "learnexit.toml")
    result = subprocess.run(
        ["/bin/sh", "-c", _cron_command(command, tmp_path)], env=env, capture_output=True, text=True, timeout=300
    )
    # cron mails whatever the line prints: nothing when all is well
    assert result.returncode == 0 and result.stdout == "" and result.stderr == "", result
    assert not (tmp_path / "logger.calls").exists()
    json.loads((tmp_path / "log" / "purge-last.json").read_text(encoding="utf-8"))
    for line in (tmp_path / "log" / "events.jsonl").read_text(encoding="utf-8").splitlines():
        assert {"time", "level", "event"} <= json.loads(line).keys()


def test_crontab_line_mails_on_failure(fresh_demo: Path, bin_dir: Path, tmp_path: Path) -> None:
    require_commands("purge")
    ((_fields, command),) = cron_entries(CRONTAB.read_text(encoding="utf-8"))
    broken = tmp_path / "broken.toml"
    broken.write_text('[source]\nurl = "sqlite:///lms.db"\n[customer]\ntenancy = "nope"\n', encoding="utf-8")
    env = shell_env(bin_dir, broken)
    result = subprocess.run(
        ["/bin/sh", "-c", _cron_command(command, tmp_path)], env=env, capture_output=True, text=True, timeout=300
    )
    assert "learnexit purge --due failed with exit 2" in result.stdout  # → cron mails MAILTO
    assert "-p user.err" in (tmp_path / "logger.calls").read_text(encoding="utf-8")
    events = [json.loads(line) for line in (tmp_path / "log" / "events.jsonl").read_text().splitlines()]
    assert events[-1]["event"] == "error" and events[-1]["exit_code"] == 2


def _hold_purge_lock(demo: Path):  # type: ignore[no-untyped-def]
    from learnexit.config import load_settings
    from learnexit.ledger.store import Ledger

    ledger = Ledger(load_settings(demo / "learnexit.toml").state_url)
    return ledger, ledger.lock("purge")


def test_second_purge_is_busy_and_recipes_treat_it_as_harmless(fresh_demo: Path, bin_dir: Path, tmp_path: Path) -> None:
    """What the recipes promise instead of flock: a concurrent run exits 4, and that is not an alert."""
    require_commands("purge")
    ledger, lock = _hold_purge_lock(fresh_demo)
    env = shell_env(bin_dir, fresh_demo / "learnexit.toml")
    with ledger, lock:
        plain = subprocess.run(["learnexit", *PURGE_ARGV], env=env, capture_output=True, text=True, timeout=300)
        assert plain.returncode == 4, plain.stderr
        assert json.loads(plain.stderr.splitlines()[-1])["exit_code"] == 4
        ((_fields, command),) = cron_entries(CRONTAB.read_text(encoding="utf-8"))
        cron = subprocess.run(
            ["/bin/sh", "-c", _cron_command(command, tmp_path)], env=env, capture_output=True, text=True, timeout=300
        )
        assert cron.stdout == "" and not (tmp_path / "logger.calls").exists()  # no mail, no syslog alert
        script = k8s_script(k8s_container(cronjob())).replace("/tmp/purge.json", str(tmp_path / "purge.json"))
        pod = subprocess.run(["/bin/sh", "-c", script], env=env, capture_output=True, text=True, timeout=300)
        assert pod.returncode == 0, pod.stderr  # busy → the Job succeeds


def test_kubernetes_script_prints_one_json_line(fresh_demo: Path, bin_dir: Path, tmp_path: Path) -> None:
    require_commands("purge")
    script = k8s_script(k8s_container(cronjob())).replace("/tmp/purge.json", str(tmp_path / "purge.json"))
    env = shell_env(bin_dir, fresh_demo / "learnexit.toml")
    result = subprocess.run(["/bin/sh", "-c", script], env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 1 and "customers" in json.loads(lines[0])
    for line in result.stderr.splitlines():
        json.loads(line)


def _run_ci(script: str, demo: Path, bin_dir: Path, tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    if shutil.which("jq") is None:
        message = "jq not installed (apt-get install jq): the CI recipes use it to list customers"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    work = tmp_path / "ci"
    work.mkdir(exist_ok=True)
    path = work / "step.sh"
    path.write_text(script, encoding="utf-8")
    # GitHub runs `shell: bash` as `bash --noprofile --norc -eo pipefail {0}`; GitLab likewise stops on errors.
    return subprocess.run(
        ["bash", "--noprofile", "--norc", "-eo", "pipefail", str(path)],
        cwd=work,
        env=shell_env(bin_dir, demo / "learnexit.toml", **env),
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.parametrize("recipe", ["github", "gitlab"])
def test_ci_recipe_passes_when_nothing_needs_attention(
    recipe: str, fresh_demo: Path, bin_dir: Path, tmp_path: Path
) -> None:
    require_commands("status")
    script = github_script() if recipe == "github" else gitlab_script()
    result = _run_ci(script, fresh_demo, bin_dir, tmp_path, GITHUB_STEP_SUMMARY=str(tmp_path / "summary.md"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "nothing needs attention" in result.stdout
    json.loads((tmp_path / "ci" / "status.json").read_text(encoding="utf-8"))


@pytest.mark.parametrize("recipe", ["github", "gitlab"])
def test_ci_recipe_fails_with_the_customers_needing_attention(
    recipe: str, fresh_demo: Path, bin_dir: Path, tmp_path: Path
) -> None:
    require_commands("notice", "status")
    env = shell_env(bin_dir, fresh_demo / "learnexit.toml", LEARNEXIT_NOW="2026-06-01T09:00:00+02:00")
    notice = subprocess.run(
        ["learnexit", "notice", "globex", "--received", "2026-06-01", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert notice.returncode == 0, notice.stderr
    timeline = json.loads(notice.stdout)
    # the export window is about to close and nothing was exported: someone must act
    deadline = timeline["export_deadline"]
    from datetime import date, timedelta

    when = (date.fromisoformat(deadline) - timedelta(days=3)).isoformat()
    script = github_script() if recipe == "github" else gitlab_script()
    summary = tmp_path / "summary.md"
    result = _run_ci(
        script, fresh_demo, bin_dir, tmp_path, LEARNEXIT_NOW=f"{when}T09:00:00+02:00", GITHUB_STEP_SUMMARY=str(summary)
    )
    assert result.returncode == 5, result.stdout + result.stderr
    assert "globex" in result.stdout and "acme" not in result.stdout, result.stdout
    status = json.loads((tmp_path / "ci" / "status.json").read_text(encoding="utf-8"))
    assert status["attention"]
    if recipe == "github":
        assert "globex" in summary.read_text(encoding="utf-8")
