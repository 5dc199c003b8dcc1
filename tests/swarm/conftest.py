"""Swarm fixtures: a real engine (skipped when none answers), the stack's images from the tree.

`make test-swarm` runs these; `make test` leaves them out. What they measure
(build times, image sizes, the services, the answers, the update's losses) is
printed at the end under "swarm report".
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import Any

import pytest

from tests.helpers import report_section
from tests.swarm.engine import (
    Built,
    Docker,
    DockerFailed,
    Image,
    build,
    docker_binary,
    stack_images,
)

report, pytest_terminal_summary = report_section("swarm report")


@pytest.fixture(scope="session")
def docker() -> Docker:
    docker = Docker(docker_binary())
    info = docker.info()
    if info is None:
        pytest.skip(
            f"no Docker engine answers `{docker.binary} info`: start one (as root: "
            'eval "$(../shared/engine/docker-engine.sh up)") or set $DOCKER'
        )
    return docker


@pytest.fixture(scope="session")
def engine(docker: Docker, report: list[str]) -> dict[str, Any]:
    info = docker.info() or {}
    version = docker.out(
        "version", "--format", "client {{.Client.Version}}, server {{.Server.Version}}"
    )
    report.append(f"engine: {version}; kernel {info.get('KernelVersion')}")
    return info


@pytest.fixture(scope="session")
def tag() -> str:
    """A tag no one else uses, so a parallel run or a real deployment is never touched."""
    return f"swarm-test-{secrets.token_hex(3)}"


@pytest.fixture(scope="session")
def images(
    docker: Docker, engine: dict[str, Any], tag: str, report: list[str]
) -> Iterator[dict[str, Built]]:
    """Every image of docker-stack.yml, built from the working tree; removed afterwards."""
    built: dict[str, Built] = {}
    try:
        for image in stack_images({"REGISTRY": "", "TAG": tag}):
            built[image.service] = result = _build(docker, image)
            report.append(
                f"built {image.reference} from {image.context}/{image.dockerfile}: "
                f"{result.seconds:.1f} s, "
                f"{result.size_bytes / 1e6:.0f} MB"
            )
        yield built
    finally:
        for result in built.values():
            docker.run("image", "rm", result.image.reference, check=False)


def _build(docker: Docker, image: Image) -> Built:
    try:
        return build(docker, image)
    except DockerFailed as exc:
        pytest.fail(f"building {image.service} failed: {exc}")
