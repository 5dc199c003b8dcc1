"""Images for another CPU on the local engine: arches, builds, waits on emulated containers.

Everything goes through the docker CLI of tests/swarm/engine.py, with the
arch's --platform and the engine's base image of that arch as PYTHON_IMAGE,
exactly as the Dockerfiles' headers tell an operator to build.
"""

from __future__ import annotations

import os
import time
import tomllib
import urllib.request
from dataclasses import dataclass

from tests.swarm.engine import Built, Docker, Image
from tests.swarm.test_swarm_stack import toml_text, trusting_config
from verification.devca import DevCA

# Seconds. Cold, the armv7 dispatcher compiles cffi under QEMU: minutes, not an hour.
BUILD_WITHIN = 1800


@dataclass(frozen=True)
class Arch:
    """A CPU the images are built for and run on under emulation."""

    name: str
    platform: str  # docker's --platform
    architecture: str  # the image config's Architecture...
    variants: tuple[str, ...]  # ...and Variant ("" and "v8" both mean plain arm64)
    machine: str  # platform.machine() in a container
    base_variable: str  # the engine's env line naming its Python base image of the arch
    # The board's CPU, for QEMU (its QEMU_CPU): QEMU's default arm64 CPU emulates
    # pointer authentication in software, which makes Debian's Python 20 times slower.
    cpu: str

    @property
    def base(self) -> str:
        return os.environ.get(self.base_variable, "")


ARCHES = {
    "arm64": Arch(
        name="arm64",
        platform="linux/arm64",
        architecture="arm64",
        variants=("", "v8"),
        machine="aarch64",
        base_variable="FUNKER_ENGINE_PYTHON_ARM64",
        cpu="cortex-a72",  # a Raspberry Pi 4's
    ),
    "armv7": Arch(
        name="armv7",
        platform="linux/arm/v7",
        architecture="arm",
        variants=("v7",),
        machine="armv7l",
        base_variable="FUNKER_ENGINE_PYTHON_ARMV7",
        cpu="cortex-a7",  # a Raspberry Pi 2's, the oldest board on a 32-bit OS
    ),
}


def build(docker: Docker, image: Image, arch: Arch) -> Built:
    """The image for `arch` from the working tree, timed and measured.

    --network host: the engine gives build containers no route out, and pip
    needs PyPI. Never --pull: the base exists in the engine's store only.
    QEMU_CPU reaches the stages that declare it (the dispatcher's); a
    Dockerfile without it, like the example functions', ignores it.
    """
    started = time.monotonic()
    docker.run(
        "build",
        "--network",
        "host",
        "--platform",
        arch.platform,
        "--build-arg",
        f"PYTHON_IMAGE={arch.base}",
        "--build-arg",
        f"QEMU_CPU={arch.cpu}",
        "-f",
        f"{image.context}/{image.dockerfile}",
        "-t",
        image.reference,
        image.context,
        timeout=BUILD_WITHIN,
        env={**os.environ, "DOCKER_BUILDKIT": "1"},
    )
    seconds = time.monotonic() - started
    (details,) = docker.inspect("image", "inspect", image.reference)
    return Built(image, seconds, int(details["Size"]))


@dataclass(frozen=True)
class Deployment:
    """The hello function and a dispatcher routing HelloIntent to it, both emulated."""

    arch: Arch
    network: str
    function: str  # container name: the host the dispatcher's route names
    dispatcher: str  # container name
    url: str  # the dispatcher's public listener, published on loopback
    ca: DevCA


def dispatcher_config(ca: DevCA, function: str) -> str:
    """deploy/dispatch.toml trusting the run's dev CA, HelloIntent routed to `function`."""
    config = tomllib.loads(trusting_config(ca))
    config["intents"]["HelloIntent"]["host"] = function
    # One process: emulated, every start costs about ten times what it does on a board.
    config["server"]["workers"] = 1
    return toml_text(config)


def running(docker: Docker, container: str) -> bool:
    """True while it runs; once it has stopped, fails with its logs (waiting is no use)."""
    (state,) = docker.inspect("container", "inspect", container)
    if state["State"]["Status"] != "running":
        logs = docker.run("logs", "--tail", "40", container, check=False)
        raise AssertionError(
            f"{container} is {state['State']['Status']} (exit {state['State']['ExitCode']}):\n"
            f"{logs.stdout[-3000:]}{logs.stderr[-3000:]}"
        )
    return True


def listening(docker: Docker, container: str, port: int) -> bool:
    """Whether a socket in the container listens on `port` (a function prints nothing)."""
    running(docker, container)
    tables = docker.run(
        "exec", container, "cat", "/proc/net/tcp", "/proc/net/tcp6", check=False
    ).stdout
    # Columns: sl, local address (hex ip:port), remote address, state (0A: LISTEN).
    return any(
        len(row) > 3 and row[1].endswith(f":{port:04X}") and row[3] == "0A"
        for row in (line.split() for line in tables.splitlines())
    )


def healthy(docker: Docker, container: str, url: str) -> bool:
    running(docker, container)
    try:
        with urllib.request.urlopen(url + "healthz", timeout=3) as reply:
            return reply.status == 200
    except OSError:
        return False
