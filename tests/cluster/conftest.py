"""A real three-node swarm: the stack across it, HAProxy in front, and the means to hurt it.

`make test-cluster` runs these; `make test` leaves them out. They need the cluster of
../shared/engine/docker-swarm-cluster.sh (`up 3`, as root; `.ci/run` brings it up) for the
stack, the single-node engine of docker-engine.sh beside it to build the images (the nodes
have no network), and Debian's haproxy. Without any of them the suite skips, saying which.

The images are built from the working tree on the single-node engine and loaded into every
node (only those a node lacks); the stack is docker-stack.yml + deploy/stack.dnsrr.yml +
deploy/stack.ha.yml (two dispatchers, every function's two replicas on different nodes) +
tests/swarm/stack.test.yml + stack.cluster.yml (SNS on); the balancer is deploy/haproxy.cfg
with its bind line and server addresses replaced. What the faults cost is printed at the end under
"cluster report".
"""

from __future__ import annotations

import csv
import json
import secrets
import shutil
import socket
import subprocess
import time
import tomllib
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.serialization import Encoding

from skill.settings.embedded import DEVELOPMENT_TOPIC
from tests.cluster.traffic import ANSWER, hello_body, post
from tests.helpers import free_port, report_section
from tests.swarm.engine import (
    DNSRR_FILE,
    ROOT,
    STACK_FILE,
    Docker,
    DockerFailed,
    build,
    compose_files,
    docker_binary,
    docker_env,
    stack_images,
    wait_for,
)
from tests.swarm.test_swarm_stack import (
    TEST_OVERRIDE,
    replicas_deployed,
    toml_text,
    trusting_config,
)
from verification.devca import DevCA

HERE = Path(__file__).resolve().parent
CLUSTER_SCRIPT = ROOT.parent / "shared" / "engine" / "docker-swarm-cluster.sh"
CLUSTER_OVERRIDE = HERE / "stack.cluster.yml"
HA_OVERRIDE = ROOT / "deploy" / "stack.ha.yml"
HAPROXY_CONFIG = ROOT / "deploy" / "haproxy.cfg"
SNS_CHAIN_TARGET = "/etc/funker-dispatch/devca-sns-chain.pem"
#: Seconds for the whole stack to run all its replicas after a deploy or a fault.
CONVERGE_WITHIN = 240

report, pytest_terminal_summary = report_section("cluster report")


# --- the cluster ----------------------------------------------------------------


def cluster_env() -> dict[str, str]:
    """The script's env lines (`export K=V ...`) as a dict; empty when it has none to give."""
    if not CLUSTER_SCRIPT.exists():
        return {}
    result = subprocess.run(
        ["bash", str(CLUSTER_SCRIPT), "env"], capture_output=True, text=True, timeout=60
    )
    env: dict[str, str] = {}
    for line in result.stdout.splitlines():
        for word in line.removeprefix("export ").split():
            key, sep, value = word.partition("=")
            if sep:
                env[key] = value.strip("'\"")
    return env


@dataclass(frozen=True)
class On:
    """The docker CLI aimed at one node's engine."""

    docker: Docker
    host: str

    def run(self, *args: str, **options: Any) -> subprocess.CompletedProcess[str]:
        return self.docker.run("-H", self.host, *args, **options)

    def out(self, *args: str, timeout: float = 60) -> str:
        return self.run(*args, timeout=timeout).stdout.strip()

    def lines(self, *args: str, timeout: float = 60) -> list[str]:
        return [line for line in self.out(*args, timeout=timeout).splitlines() if line.strip()]


@dataclass
class Cluster:
    docker: Docker  # the single-node engine: builds
    env: dict[str, str]
    nodes: int
    down: set[int] = field(default_factory=set)  # nodes a fault took away, until brought back

    def node(self, k: int) -> On:
        return On(self.docker, self.env[f"DOCKER_HOST_NODE{k}"])

    @property
    def manager(self) -> On:
        return self.node(1)

    def ip(self, k: int) -> str:
        return self.env[f"FD_SWARM_NODE{k}_IP"]

    def script(self, command: str, k: int, *, check: bool = True) -> None:
        subprocess.run(
            ["bash", str(CLUSTER_SCRIPT), command, str(k)],
            check=check,
            capture_output=True,
            timeout=120,
        )
        if command in ("kill-node", "stop-node", "cut-node"):
            self.down.add(k)
        elif command in ("start-node", "heal-node"):
            self.down.discard(k)

    def node_states(self) -> dict[int, str]:
        """Node K → "ready" / "down" as the manager sees it."""
        states = {}
        for line in self.manager.lines("node", "ls", "--format", "{{.Hostname}} {{.Status}}"):
            hostname, status = line.split()
            states[int(hostname.removeprefix("fdnode"))] = status.lower()
        return states


@pytest.fixture(scope="session")
def cluster(report: list[str]) -> Cluster:
    env = cluster_env()
    if env.get("FUNKER_DOCKER_SWARM_CLUSTER") != "1":
        pytest.skip(
            "no three-node swarm: bring one up as root with "
            f"`FD_SWARM_HEARTBEAT=1s bash {CLUSTER_SCRIPT} up 3` (the single-node engine of "
            "docker-engine.sh must run too: it builds the images)"
        )
    docker = Docker(docker_binary())
    if docker.info() is None:
        pytest.skip(f"no engine answers `{docker.binary} info`: it builds the images")
    if shutil.which("haproxy") is None:
        pytest.skip("no haproxy (the balancer before the dispatchers): apt-get install haproxy")
    cluster = Cluster(docker, env, int(env["FD_SWARM_NODES"]))
    if cluster.nodes < 3:
        pytest.skip(f"{cluster.nodes} nodes: the faults need three")
    try:
        states = cluster.node_states()
    except DockerFailed as exc:
        pytest.skip(f"the cluster's manager does not answer: {exc}")
    for k in range(2, cluster.nodes + 1):  # a node a failed run left down
        if states.get(k) != "ready":
            cluster.script("heal-node", k, check=False)
            cluster.script("start-node", k, check=False)
    wait_for(
        lambda: set(cluster.node_states().values()) == {"ready"},
        120,
        "every node of the cluster to be ready",
    )
    kernel = docker.out("info", "--format", "{{.KernelVersion}}")
    version = cluster.manager.out("version", "--format", "{{.Server.Version}}")
    heartbeat = cluster.manager.out(
        "info", "--format", "{{.Swarm.Cluster.Spec.Dispatcher.HeartbeatPeriod}}"
    )
    report.append(
        f"cluster: {cluster.nodes} nodes (dockerd {version}, one manager), kernel {kernel}, "
        f"swarm heartbeat {heartbeat}"
    )
    return cluster


# --- the images -----------------------------------------------------------------


@pytest.fixture(scope="session")
def tag() -> str:
    return "cluster-test"


@pytest.fixture(scope="session")
def images(cluster: Cluster, tag: str, report: list[str]) -> list[str]:
    """Every image of the stack, built from the tree, in every node (loaded where missing)."""
    references = []
    started = time.monotonic()
    for image in stack_images({"REGISTRY": "", "TAG": tag}):
        try:
            build(cluster.docker, image)
        except DockerFailed as exc:
            pytest.fail(f"building {image.service} failed: {exc}")
        references.append(image.reference)
    built = time.monotonic() - started
    ids = {ref: cluster.docker.out("image", "inspect", "-f", "{{.Id}}", ref) for ref in references}
    missing = set()
    for k in range(1, cluster.nodes + 1):
        for ref, image_id in ids.items():
            found = cluster.node(k).run("image", "inspect", "-f", "{{.Id}}", ref, check=False)
            if found.stdout.strip() != image_id:
                missing.add(ref)
    started = time.monotonic()
    if missing:
        save = subprocess.Popen(
            [cluster.docker.binary, "save", *sorted(missing)], stdout=subprocess.PIPE
        )
        subprocess.run(
            ["bash", str(CLUSTER_SCRIPT), "load", "-"],
            stdin=save.stdout,
            check=True,
            capture_output=True,
            timeout=900,
        )
        assert save.wait(timeout=60) == 0
    report.append(
        f"images: {len(references)} built in {built:.0f} s, {len(missing)} loaded into "
        f"{cluster.nodes} nodes in {time.monotonic() - started:.0f} s"
    )
    return references


# --- the stack ------------------------------------------------------------------


def cluster_config(ca: DevCA) -> str:
    """deploy/dispatch.toml trusting the dev CA (tests/swarm's), with SNS uploads on."""
    config = tomllib.loads(trusting_config(ca))
    config["verification"]["local_chains"][ca.sns_chain_url] = SNS_CHAIN_TARGET
    config["triggers"] = {"sns": {"topics": [DEVELOPMENT_TOPIC]}}
    config["events"] = {
        "uploads": {"source": "s3", "event": "ObjectCreated:*", "host": "uploads"},
    }
    return toml_text(config)


@dataclass
class Stack:
    cluster: Cluster
    name: str
    replicas: dict[str, int]
    ca: DevCA
    url: str = ""  # the balancer's
    stats_socket: Path | None = None  # the balancer's, once it runs

    def service(self, short: str) -> str:
        return f"{self.name}_{short}"

    def running(self, short: str) -> list[int]:
        """Nodes of the service's tasks that are running now (desired and current)."""
        lines = self.cluster.manager.lines(
            "service",
            "ps",
            "--filter",
            "desired-state=running",
            "--format",
            "{{.CurrentState}}|{{.Node}}",
            self.service(short),
        )
        # A task not placed yet has no node: "Pending 1 second ago|".
        states = [line.partition("|")[::2] for line in lines]
        return sorted(
            int(node.removeprefix("fdnode"))
            for state, node in states
            if state.startswith("Running")
        )

    def placement(self) -> dict[str, list[int]]:
        return {short: self.running(short) for short in self.replicas}

    def converged(self) -> bool:
        """Every service runs all its replicas on nodes that are up, and every dispatcher
        answers /healthz on its node and is in the balancer's rotation."""
        up = set(range(1, self.cluster.nodes + 1)) - self.cluster.down
        for short, count in self.replicas.items():
            nodes = self.running(short)
            if len(nodes) != count or not set(nodes) <= up:
                return False
        dispatchers = self.running("dispatcher")
        if not all(self.healthz(k) for k in dispatchers):
            return False
        # The balancer's own view too: a fault must find every dispatcher in rotation.
        return self.stats_socket is None or set(dispatchers) <= self.in_rotation()

    def in_rotation(self) -> set[int]:
        """Nodes whose server HAProxy has UP, from its stats socket (`show stat`)."""
        assert self.stats_socket is not None
        with socket.socket(socket.AF_UNIX) as client:
            client.settimeout(5)
            client.connect(str(self.stats_socket))
            client.sendall(b"show stat\n")
            raw = b""
            while chunk := client.recv(65536):
                raw += chunk
        rows = csv.DictReader(raw.decode().removeprefix("# ").splitlines())
        return {
            int(row["svname"].removeprefix("node"))
            for row in rows
            if row["pxname"] == "dispatchers"
            and row["svname"].startswith("node")
            and row["status"].startswith("UP")
        }

    def healthz(self, k: int) -> bool:
        try:
            url = f"http://{self.cluster.ip(k)}:3000/healthz"
            with urllib.request.urlopen(url, timeout=2) as reply:
                return reply.status == 200
        except OSError:
            return False

    def update_state(self, short: str) -> str:
        out = self.cluster.manager.out(
            "service", "inspect", "--format", "{{json .UpdateStatus}}", self.service(short)
        )
        return (json.loads(out) or {}).get("State", "")

    def diagnose(self) -> str:
        parts = [
            "\n".join(self.cluster.manager.lines("node", "ls")),
            "\n".join(self.cluster.manager.lines("service", "ls")),
        ]
        for short in ("dispatcher", "hello"):
            parts.append(
                self.cluster.manager.run(
                    "service", "ps", "--no-trunc", self.service(short), check=False
                ).stdout
            )
        return "\n".join(parts)


def balancer_config(cluster: Cluster, port: int, stats: Path) -> str:
    """deploy/haproxy.cfg as shipped, but for plain HTTP on loopback and this cluster's nodes,
    with a stats socket to ask which dispatchers it has in rotation."""
    lines = []
    servers_done = False
    for line in HAPROXY_CONFIG.read_text(encoding="utf-8").splitlines():
        stripped = line.strip()
        if stripped == "global":
            lines += [line, f"    stats socket {stats} mode 600 level user"]
            continue
        if stripped.startswith("bind "):
            line = f"    bind 127.0.0.1:{port}"
        elif stripped.startswith("ssl-default-bind-options"):
            continue
        elif stripped.startswith("server "):
            if servers_done:
                continue
            servers_done = True
            lines += [
                f"    server node{k} {cluster.ip(k)}:3000 check"
                for k in range(1, cluster.nodes + 1)
            ]
            continue
        lines.append(line)
    assert servers_done, f"{HAPROXY_CONFIG} has no server line"
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="session")
def stack(
    cluster: Cluster,
    images: list[str],
    tag: str,
    tmp_path_factory: pytest.TempPathFactory,
    report: list[str],
) -> Iterator[Stack]:
    work = tmp_path_factory.mktemp("cluster")
    ca = DevCA.load_or_create(work / "devca")
    (work / "dispatch.toml").write_text(cluster_config(ca), encoding="utf-8")
    (work / "devca-root.pem").write_bytes(ca.root.public_bytes(Encoding.PEM))
    (work / "devca-chain.pem").write_bytes(Path(ca.chain_path).read_bytes())
    (work / "devca-sns-chain.pem").write_bytes(Path(ca.sns_chain_path).read_bytes())
    name = f"fdcluster{secrets.token_hex(2)}"
    files = [STACK_FILE, DNSRR_FILE, HA_OVERRIDE, TEST_OVERRIDE, CLUSTER_OVERRIDE]
    variables = {
        "REGISTRY": "",
        "TAG": tag,
        "PUBLISHED_PORT": "3000",
        "DISPATCH_CONFIG_VERSION": "1",
        "SWARM_TEST_NAME": name,
        "SWARM_TEST_DIR": str(work),
    }
    stack = Stack(cluster, name, replicas_deployed(files), ca)
    manager = cluster.manager
    manager.run("network", "create", "--driver", "overlay", "--attachable", f"{name}_funker")
    haproxy: subprocess.Popen[bytes] | None = None
    try:
        started = time.monotonic()
        manager.run(
            "stack",
            "deploy",
            "--resolve-image",
            "never",
            *compose_files(files),
            name,
            env=docker_env(variables),
            timeout=180,
        )
        try:
            wait_for(stack.converged, CONVERGE_WITHIN, f"{name} to run every replica", every=1.0)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{stack.diagnose()}") from None
        port = free_port()
        config = work / "haproxy.cfg"
        stats = work / "haproxy.sock"
        config.write_text(balancer_config(cluster, port, stats), encoding="utf-8")
        subprocess.run(["haproxy", "-c", "-q", "-f", str(config)], check=True, timeout=30)
        haproxy = subprocess.Popen(
            ["haproxy", "-db", "-f", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        stack.url = f"http://127.0.0.1:{port}"
        wait_for(stats.exists, 30, "HAProxy's stats socket")
        stack.stats_socket = stats
        wait_for(stack.converged, 60, "HAProxy to have every dispatcher in rotation")
        wait_for(lambda: answers(stack), 60, "a HelloIntent answered through the balancer")
        report.append(
            f"stack {name} on {cluster.nodes} nodes, answering through HAProxy in "
            f"{time.monotonic() - started:.0f} s; placement {stack.placement()}"
        )
        yield stack
    finally:
        if haproxy is not None:
            haproxy.terminate()
            haproxy.wait(timeout=30)
        for k in sorted(cluster.down):
            cluster.script("heal-node", k, check=False)
            cluster.script("start-node", k, check=False)
        manager.run("stack", "rm", name, check=False)
        wait_for(
            lambda: manager.run("network", "rm", f"{name}_funker", check=False).returncode == 0,
            120,
            f"network {name}_funker to be removed",
            every=1.0,
        )


def answers(stack: Stack) -> bool:
    body = hello_body()
    status, raw, _ = post(stack.url + "/", body, stack.ca.sign(body))
    return status == 200 and ANSWER in raw.decode("utf-8", "replace")
