"""The dispatcher image on its own: deploy/dispatch.toml at the CMD's path, healthy, uid 10001.

No swarm: `docker create`, the production config copied in where the Docker
config of the stack would be mounted, `docker start`, and the image's own
HEALTHCHECK (15 s interval) decides when it is healthy.
"""

from __future__ import annotations

import json
import secrets
import socket
import urllib.request
from collections.abc import Iterator

import pytest

from tests.swarm.engine import ROOT, Built, Docker, wait_for

CONFIG_TARGET = "/etc/funker-dispatch/dispatch.toml"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def dispatcher(docker: Docker, images: dict[str, Built]) -> Iterator[tuple[str, int]]:
    """A container of the dispatcher image, its public port published on loopback."""
    name = f"funker-dispatch-image-test-{secrets.token_hex(3)}"
    port = free_port()
    reference = images["dispatcher"].image.reference
    docker.run("create", "--name", name, "-p", f"127.0.0.1:{port}:3000", reference)
    try:
        # docker cp rather than a bind mount: it works with a remote engine too.
        docker.run("cp", str(ROOT / "deploy" / "dispatch.toml"), f"{name}:{CONFIG_TARGET}")
        docker.run("start", name)
        yield name, port
    finally:
        docker.run("rm", "--force", name, check=False)


def health(docker: Docker, name: str) -> str:
    (state,) = docker.inspect("container", "inspect", name)
    assert state["State"]["Status"] == "running", docker.out("logs", "--tail", "30", name)
    return state["State"]["Health"]["Status"]


def test_dispatcher_image_serves_the_production_config_and_becomes_healthy(docker, dispatcher):
    name, port = dispatcher
    # The first check runs one interval (15 s) after the start.
    wait_for(lambda: health(docker, name) == "healthy", 60, "the image's HEALTHCHECK to pass")
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as reply:
        assert reply.status == 200
        assert json.load(reply) == {"status": "ok"}
    logs = docker.run("logs", name).stderr + docker.run("logs", name).stdout
    assert CONFIG_TARGET in logs or "Listening at: http://0.0.0.0:3000" in logs, logs[-2000:]


def test_dispatcher_image_runs_as_uid_10001_not_root(docker, dispatcher):
    name, _ = dispatcher
    (image,) = docker.inspect("container", "inspect", name)
    assert image["Config"]["User"] == "10001:10001"
    # The server process itself (PID 1 in the container), not just the default exec user.
    status = docker.out("exec", name, "cat", "/proc/1/status")
    uids = next(line.split()[1:] for line in status.splitlines() if line.startswith("Uid:"))
    gids = next(line.split()[1:] for line in status.splitlines() if line.startswith("Gid:"))
    assert set(uids) == {"10001"} and set(gids) == {"10001"}, (uids, gids)


def test_dispatcher_image_reads_the_config_the_stack_mounts(docker, dispatcher):
    name, _ = dispatcher
    (container,) = docker.inspect("container", "inspect", name)
    assert container["Config"]["Entrypoint"] == ["funker-dispatch"]
    assert container["Config"]["Cmd"] == ["serve", "--config", CONFIG_TARGET]
    assert "3000/tcp" in container["Config"]["ExposedPorts"]
    assert "3001/tcp" not in container["HostConfig"]["PortBindings"]
