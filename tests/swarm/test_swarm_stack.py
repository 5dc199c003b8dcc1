"""The real docker-stack.yml on a real swarm, asked from outside with signed requests.

The stack is deployed as an operator would (`docker stack deploy -c
docker-stack.yml`), on a node without IPVS with deploy/stack.dnsrr.yml on
top, and tests/swarm/stack.test.yml last: a dispatcher config that trusts a
dev CA made for this run, and names of the run's own. Then, from the host:
each example function's intent through `funker-dispatch simulate --url`, the
hostname function answered by two replicas, a killed function container
replaced, `certify`, a rolling config update under a stream of requests, and
`docker stack rm` leaving nothing.

The tests run in file order on one stack (each leaves it as it found it).
"""

from __future__ import annotations

import json
import os
import re
import secrets
import socket
import subprocess
import time
import tomllib
import urllib.request
from collections.abc import Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography.hazmat.primitives.serialization import Encoding

from skill.settings import DEVELOPMENT_SKILL_ID, Settings, load_settings
from tests.swarm.engine import (
    DNSRR_FILE,
    ROOT,
    STACK_FILE,
    Built,
    Docker,
    compose_files,
    docker_env,
    example_functions,
    stack_services,
    wait_for,
)
from tests.swarm.exercises import (
    FUNKER_DISPATCH,
    Answer,
    answering_host,
    ask,
    exercise_for,
)
from verification.devca import DevCA

HERE = Path(__file__).resolve().parent
TEST_OVERRIDE = HERE / "stack.test.yml"
PROD_CONFIG = ROOT / "deploy" / "dispatch.toml"
ROOT_TARGET = "/etc/funker-dispatch/devca-root.pem"
CHAIN_TARGET = "/etc/funker-dispatch/devca-chain.pem"
# Seconds: convergence includes the dispatcher's first health check (15 s interval).
CONVERGE_WITHIN = 180
# The stream during the rolling update: one request a second, at least this many.
STREAM_REQUESTS = 50
STREAM_PACE = 1.0
# With one dispatcher on a host-mode port (no IPVS), stop-first leaves the node
# without a listener for a moment; at most this many of the stream may fall in it.
NO_IPVS_LOSS_ALLOWED = 4


def without_ipvs() -> bool:
    """$FUNKER_SWARM_NO_IPVS (printed by the engine script) when set, else this kernel's ip_vs."""
    flag = os.environ.get("FUNKER_SWARM_NO_IPVS")
    if flag is not None:
        return flag == "1"
    return not Path("/proc/sys/net/ipv4/vs").exists()


# --- the dispatcher's config for the run --------------------------------------


def toml_text(table: Mapping[str, Any], path: tuple[str, ...] = ()) -> str:
    """TOML for what tomllib reads from deploy/dispatch.toml: tables, strings, numbers, lists."""

    def key(name: str) -> str:
        return json.dumps(name, ensure_ascii=False)

    def value(item: Any) -> str:
        if isinstance(item, bool):
            return "true" if item else "false"
        if isinstance(item, int | float):
            return repr(item)
        if isinstance(item, str):
            return json.dumps(item, ensure_ascii=False)
        if isinstance(item, list) and not any(isinstance(x, dict) for x in item):
            return "[" + ", ".join(value(x) for x in item) + "]"
        raise TypeError(f"no TOML for {item!r} here")

    lines = [f"[{'.'.join(key(p) for p in path)}]"] if path else []
    lines += [f"{key(k)} = {value(v)}" for k, v in table.items() if not isinstance(v, dict)]
    text = "\n".join(lines) + "\n"
    for name, sub in table.items():
        if isinstance(sub, dict):
            text += "\n" + toml_text(sub, (*path, name))
    return text


def trusting_config(dev_ca: DevCA) -> str:
    """deploy/dispatch.toml as it is, but trusting the dev CA and its development skill id."""
    config = tomllib.loads(PROD_CONFIG.read_text(encoding="utf-8"))
    config["skill"]["application_ids"] = [DEVELOPMENT_SKILL_ID]
    config["verification"]["trusted_roots"] = [ROOT_TARGET]
    config["verification"]["local_chains"] = {dev_ca.chain_url: CHAIN_TARGET}
    text = toml_text(config)
    assert tomllib.loads(text) == config
    return text


# --- the stack ------------------------------------------------------------------


@dataclass
class Stack:
    docker: Docker
    name: str
    files: list[Path]
    variables: dict[str, str]
    url: str
    home: Path  # FUNKER_DISPATCH_HOME of the dev CA the dispatcher trusts
    dnsrr: bool
    removed: bool = False
    replicas: dict[str, int] = field(default_factory=dict)

    @property
    def network(self) -> str:
        return f"{self.name}_funker"

    def service(self, short: str) -> str:
        return f"{self.name}_{short}"

    def deploy(self, **variables: str) -> None:
        self.variables.update(variables)
        # --resolve-image never: the images exist on this node only; with a
        # registry, leave the default so every node pulls the same digest.
        self.docker.run(
            "stack",
            "deploy",
            "--resolve-image",
            "never",
            *compose_files(self.files),
            self.name,
            env=docker_env(self.variables),
            timeout=180,
        )

    def service_ls(self) -> list[str]:
        return self.docker.lines(
            "service",
            "ls",
            "--filter",
            f"label=com.docker.stack.namespace={self.name}",
            "--format",
            "{{.Name}}\t{{.Mode}}\t{{.Replicas}}\t{{.Image}}\t{{.Ports}}",
        )

    def converged(self) -> bool:
        running = {}
        for line in self.service_ls():
            name, _mode, replicas, *_ = line.split("\t")
            # "1/1", or "1/1 (max 1 per node)" with a placement limit.
            running[name.removeprefix(f"{self.name}_")] = replicas.split()[0]
        expected = {name: f"{n}/{n}" for name, n in self.replicas.items()}
        return running == expected

    def wait_converged(self, what: str) -> None:
        try:
            wait_for(self.converged, CONVERGE_WITHIN, what, every=1.0)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{self.diagnose()}") from None

    def public_healthz(self) -> bool:
        try:
            with urllib.request.urlopen(self.url + "healthz", timeout=3) as reply:
                return reply.status == 200
        except OSError:
            return False

    def containers(self, short: str) -> list[str]:
        """Running containers of a service, as 12-character ids (their hostnames)."""
        return self.docker.lines(
            "ps",
            "--filter",
            f"label=com.docker.swarm.service.name={self.service(short)}",
            "--filter",
            "status=running",
            "--format",
            "{{.ID}}",
        )

    def tasks(self, short: str) -> list[dict[str, Any]]:
        ids = self.docker.lines(
            "service", "ps", "--filter", "desired-state=running", "-q", self.service(short)
        )
        return self.docker.inspect("inspect", *ids) if ids else []

    def update_state(self, short: str) -> str:
        (spec,) = self.docker.inspect("service", "inspect", self.service(short))
        return (spec.get("UpdateStatus") or {}).get("State", "")

    def diagnose(self) -> str:
        parts = ["\n".join(self.service_ls())]
        for short in self.replicas:
            result = self.docker.run(
                "service", "ps", "--no-trunc", self.service(short), check=False
            )
            parts.append(result.stdout + result.stderr)
        logs = self.docker.run(
            "service", "logs", "--tail", "40", self.service("dispatcher"), check=False, timeout=30
        )
        parts.append(logs.stdout[-4000:] + logs.stderr[-4000:])
        return "\n".join(parts)

    def leftovers(self) -> list[str]:
        """What the stack still owns on the engine: services, containers, configs, networks."""
        label = f"label=com.docker.stack.namespace={self.name}"
        found = []
        for kind in ("service", "container", "config", "network"):
            command = ["ps", "-a"] if kind == "container" else [kind, "ls"]
            found += [
                f"{kind} {item}" for item in self.docker.lines(*command, "-q", "--filter", label)
            ]
        return found

    def remove(self) -> None:
        """`docker stack rm`, then wait until its tasks' containers are gone too."""
        if self.removed:
            return
        self.docker.run("stack", "rm", self.name)
        wait_for(
            lambda: not self.leftovers(), 120, f"everything of {self.name} to be gone", every=1.0
        )
        self.removed = True


def replicas_deployed(files: list[Path]) -> dict[str, int]:
    """Replicas per service once the compose files are merged (the last one that says wins)."""
    replicas: dict[str, int] = {}
    for path in files:
        services = yaml.safe_load(path.read_text(encoding="utf-8")).get("services") or {}
        for name, service in services.items():
            count = ((service or {}).get("deploy") or {}).get("replicas")
            if count is not None:
                replicas[name] = count
    return replicas


def free_port() -> int:
    """A port free on every interface: a host-mode (or ingress) port binds 0.0.0.0."""
    with socket.socket() as probe:
        probe.bind(("0.0.0.0", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def deployed() -> Settings:
    return load_settings(PROD_CONFIG, environ={})


@pytest.fixture(scope="module")
def stack(
    docker: Docker,
    engine: dict[str, Any],
    images: dict[str, Built],
    tag: str,
    tmp_path_factory: pytest.TempPathFactory,
    report: list[str],
) -> Iterator[Stack]:
    swarm = engine.get("Swarm") or {}
    if swarm.get("LocalNodeState") != "active" or not swarm.get("ControlAvailable"):
        pytest.skip("this engine is not a swarm manager: run `docker swarm init` first")
    home = tmp_path_factory.mktemp("devca-home")
    dev_ca = DevCA.load_or_create(home)
    files_dir = tmp_path_factory.mktemp("stack-files")
    (files_dir / "dispatch.toml").write_text(trusting_config(dev_ca), encoding="utf-8")
    (files_dir / "devca-root.pem").write_bytes(dev_ca.root.public_bytes(Encoding.PEM))
    (files_dir / "devca-chain.pem").write_bytes(Path(dev_ca.chain_path).read_bytes())

    dnsrr = without_ipvs()
    name = f"fdswarm{secrets.token_hex(3)}"
    port = free_port()
    files = [STACK_FILE, *([DNSRR_FILE] if dnsrr else []), TEST_OVERRIDE]
    variables = {
        "REGISTRY": "",
        "TAG": tag,
        "PUBLISHED_PORT": str(port),
        "DISPATCH_CONFIG_VERSION": "1",
        "SWARM_TEST_NAME": name,
        "SWARM_TEST_DIR": str(files_dir),
    }
    stack = Stack(docker, name, files, variables, f"http://127.0.0.1:{port}/", home, dnsrr)
    stack.replicas = replicas_deployed(files)
    assert set(stack.replicas) == set(stack_services()), "every service says its replicas"
    report.append(
        f"stack {name}: {' + '.join(p.relative_to(ROOT).as_posix() for p in files)}; "
        f"{'no IPVS: dnsrr, host-mode port' if dnsrr else 'VIPs, ingress port'} {port}"
    )
    # The same flags as the README's `docker network create` for `funker`.
    docker.run("network", "create", "--driver", "overlay", "--attachable", stack.network)
    try:
        started = time.monotonic()
        stack.deploy()
        stack.wait_converged(f"every service of {name} to run all its replicas")
        wait_for(stack.public_healthz, 60, f"{stack.url}healthz from outside")
        report.append(f"deployed and answering from outside in {time.monotonic() - started:.0f} s")
        yield stack
    finally:
        try:
            stack.remove()
        finally:
            # The run's own network (not the stack's): it goes once no endpoint is left on it.
            wait_for(
                lambda: docker.run("network", "rm", stack.network, check=False).returncode == 0,
                60,
                f"network {stack.network} to be removed",
                every=1.0,
            )


# --- the tests ----------------------------------------------------------------


def test_every_service_runs_all_its_replicas_from_the_images_just_built(stack, images, report):
    listing = stack.service_ls()
    report.append("docker service ls:")
    report.extend(f"  {line}" for line in listing)
    for short, replicas in stack.replicas.items():
        (spec,) = stack.docker.inspect("service", "inspect", stack.service(short))
        image = spec["Spec"]["TaskTemplate"]["ContainerSpec"]["Image"]
        assert image == images[short].image.reference, short
        assert spec["Spec"]["Mode"]["Replicated"]["Replicas"] == replicas
        endpoint = spec["Spec"]["EndpointSpec"]
        assert endpoint["Mode"] == ("dnsrr" if stack.dnsrr else "vip"), short
        ports = endpoint.get("Ports", [])
        if short == "dispatcher":
            # Alexa's port only; the admin listener (3001) is never published.
            assert [(p["TargetPort"], p["PublishMode"]) for p in ports] == [
                (3000, "host" if stack.dnsrr else "ingress")
            ]
            assert ports[0]["PublishedPort"] == int(stack.variables["PUBLISHED_PORT"])
        else:
            assert ports == [], f"{short} is reached over the network only"


@pytest.mark.parametrize("function", example_functions())
def test_example_function_answers_its_intent_from_outside(stack, deployed, function, report):
    assert function in stack.replicas, (
        f"examples/functions/{function} has a Dockerfile but docker-stack.yml no service "
        f"{function!r}"
    )
    exercise = exercise_for(function, deployed)
    answer = ask(stack.url, exercise, stack.home)
    report.append(f"{exercise.intent} -> {function}: {answer.summary()} ({answer.seconds:.1f} s)")
    assert answer.matches(exercise), answer.summary()


def test_hostname_intent_is_answered_by_two_replicas(stack, deployed, report):
    exercise = exercise_for("hostname", deployed)
    containers = stack.containers("hostname")
    assert len(containers) == 2, containers
    seen: dict[str, int] = {}

    def both_answered() -> bool:
        answer = ask(stack.url, exercise, stack.home)
        assert answer.matches(exercise), answer.summary()
        host = answering_host(answer)
        seen[host] = seen.get(host, 0) + 1
        return len(seen) >= 2

    wait_for(both_answered, 90, "answers from two hostname replicas", every=0)
    report.append(f"HostnameIntent answered by {len(seen)} replicas: {seen}")
    assert set(seen) <= set(containers), (seen, containers)


def test_certify_passes_against_the_stack_from_outside(stack, report):
    environ = {k: v for k, v in os.environ.items() if not k.startswith("FUNKER_DISPATCH_")}
    environ["FUNKER_DISPATCH_HOME"] = str(stack.home)
    result = subprocess.run(
        [FUNKER_DISPATCH, "certify", stack.url, "--timeout", "8"],
        capture_output=True,
        text=True,
        env=environ,
        timeout=300,
    )
    summary = result.stdout.strip().splitlines()[-1:] or [result.stderr.strip()]
    report.append(f"certify {stack.url}: exit {result.returncode}, {summary[0]}")
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_killed_function_container_is_replaced_and_its_intent_keeps_answering(
    stack, deployed, report
):
    exercise = exercise_for("hostname", deployed)
    before = stack.containers("hostname")
    assert len(before) == 2, before
    victim = before[0]
    stack.docker.run("kill", victim)
    # At once, while the swarm notices and starts a replacement: the other replica answers.
    answers = [ask(stack.url, exercise, stack.home) for _ in range(5)]
    failed = [a.summary() for a in answers if not a.matches(exercise)]
    assert not failed, failed

    def replaced() -> set[str]:
        now = stack.containers("hostname")
        return set(now) - set(before) if len(now) == 2 and victim not in now else set()

    fresh = wait_for(replaced, 60, "a replacement of the killed hostname container", every=1.0)

    def replacement_answers() -> bool:
        answer = ask(stack.url, exercise, stack.home)
        assert answer.matches(exercise), answer.summary()
        return answering_host(answer) in fresh

    wait_for(replacement_answers, 60, "an answer from the replacement container", every=0)
    report.append(
        f"killed hostname container {victim}: 5 of 5 answered meanwhile; replacement "
        f"{', '.join(sorted(fresh))} answers"
    )


def dispatcher_on(stack: Stack, version: str) -> bool:
    """Every running dispatcher task mounts the config of `version`, and no other runs."""
    tasks = stack.tasks("dispatcher")
    wanted = f"{stack.name}_dispatch_toml_v{version}"
    running = [t for t in tasks if t["Status"]["State"] == "running"]
    return len(running) == stack.replicas["dispatcher"] == len(tasks) and all(
        wanted in {c["ConfigName"] for c in t["Spec"]["ContainerSpec"]["Configs"]} for t in running
    )


def wall_clock(stamp: str) -> float:
    """Docker's RFC 3339 time (nanoseconds, Z) as a POSIX timestamp."""
    found = re.fullmatch(r"(.+?T[\d:]+)(?:\.(\d+))?(Z|[+-][\d:]+)", stamp)
    assert found, stamp
    base, fraction, zone = found.groups()
    moment = datetime.fromisoformat(base + (zone if zone != "Z" else "+00:00"))
    return moment.timestamp() + float(f"0.{fraction or 0}")


def dispatcher_timeline(stack: Stack, since: float) -> list[str]:
    """When each dispatcher container started and stopped, in seconds since `since` (wall)."""
    ids = stack.docker.lines("service", "ps", "-q", stack.service("dispatcher"))
    timeline = []
    for task in stack.docker.inspect("inspect", *ids):
        configs = {c["ConfigName"] for c in task["Spec"]["ContainerSpec"]["Configs"]}
        version = next(c.rsplit("_", 1)[1] for c in configs if "_dispatch_toml_" in c)
        container = task["Status"].get("ContainerStatus", {}).get("ContainerID")
        if not container:
            continue
        (details,) = stack.docker.inspect("container", "inspect", container)
        state = details["State"]
        start = wall_clock(state["StartedAt"]) - since
        events = [f"started {start:+.1f} s"]
        if not state["Running"]:
            events.append(f"stopped {wall_clock(state['FinishedAt']) - since:+.1f} s")
        line = f"  dispatcher {version} container {container[:12]}: {', '.join(events)}"
        timeline.append((start, line))
    return [line for _, line in sorted(timeline)]


def test_rolling_config_update_under_a_stream_of_requests(stack, deployed, report):
    exercise = exercise_for("hello", deployed)
    assert dispatcher_on(stack, "1")
    answers: list[tuple[float, Future[Answer]]] = []
    started, started_wall = time.monotonic(), time.time()
    with ThreadPoolExecutor(max_workers=16) as pool:
        update: Future[None] | None = None
        replaced: Future[object] | None = None  # done once only v2 dispatchers run
        while len(answers) < STREAM_REQUESTS or not (replaced and replaced.done()):
            assert len(answers) < 4 * STREAM_REQUESTS, "the update never finished replacing"
            # The stream's own clock: request i leaves at started + i * pace. This
            # paces a load; it waits for no state of the swarm.
            time.sleep(max(0.0, started + len(answers) * STREAM_PACE - time.monotonic()))
            answers.append(
                (time.monotonic() - started, pool.submit(ask, stack.url, exercise, stack.home))
            )
            if len(answers) == 5:
                update = pool.submit(stack.deploy, DISPATCH_CONFIG_VERSION="2")
            if update is not None and update.done() and replaced is None:
                update.result()  # a failed `docker stack deploy` fails here
                replaced = pool.submit(
                    wait_for, lambda: dispatcher_on(stack, "2"), 240, "v2 dispatchers", 1.0
                )
        assert replaced is not None
        replaced.result()  # a timeout there fails here
        results = [(at, future.result()) for at, future in answers]
    lost = [(at, a) for at, a in results if not a.matches(exercise)]
    wait_for(
        lambda: stack.update_state("dispatcher") in {"completed", "rollback_completed", "paused"},
        180,
        "the dispatcher update to finish",
        every=1.0,
    )
    state = stack.update_state("dispatcher")
    mode = (
        "one replica on a host-mode port, stop-first"
        if stack.dnsrr
        else "two replicas behind the VIP, start-first"
    )
    report.append(
        f"rolling update v1 -> v2 ({mode}): lost {len(lost)} of {len(results)} requests, "
        f"update {state}"
    )
    report.extend(f"  lost at {at:+.1f} s: {a.summary()}" for at, a in lost)
    report.extend(dispatcher_timeline(stack, started_wall))
    assert state == "completed", stack.diagnose()
    allowed = NO_IPVS_LOSS_ALLOWED if stack.dnsrr else 0
    assert len(lost) <= allowed, [(round(at, 1), a.summary()) for at, a in lost]
    wait_for(stack.public_healthz, 60, "the public /healthz after the update")
    assert ask(stack.url, exercise, stack.home).matches(exercise)


def test_stack_rm_leaves_nothing(stack, report):
    stack.remove()  # waits, with a deadline, until leftovers() is empty
    assert stack.leftovers() == []
    assert not stack.public_healthz()
    report.append(
        f"docker stack rm {stack.name}: nothing left (services, containers, configs, networks)"
    )
