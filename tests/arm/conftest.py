"""ARM fixtures: the engine's ARM base images, the images built from the tree on them, run emulated.

`make test-arm` runs these; `make test` leaves them out. They need the engine of
../shared/engine/docker-engine.sh started with FUNKER_ENGINE_ARCHES="arm64 armv7"
(QEMU user emulation, and a Python base image per arch named by the env lines
it prints); without the engine, or an arch's base image, the tests (of that
arch) skip, saying how to get it. Per arch: the dispatcher image (Dockerfile)
and the hello function's (examples/functions/hello/Dockerfile) built on that
base, both run on a bridge network of the run's own, the dispatcher trusting
a dev CA made for the run. Build times and image sizes are printed at the end
under "arm report".
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator

import pytest
from cryptography.hazmat.primitives.serialization import Encoding

from tests.arm.emulation import (
    ARCHES,
    Arch,
    Deployment,
    build,
    dispatcher_config,
    healthy,
    listening,
)
from tests.helpers import report_section
from tests.swarm.engine import Built, Docker, DockerFailed, Image, docker_binary, wait_for
from tests.swarm.test_swarm_stack import CHAIN_TARGET, ROOT_TARGET
from verification.devca import DevCA

ENGINE_UP = (
    'as root: FUNKER_ENGINE_ARCHES="arm64 armv7" eval "$(../shared/engine/docker-engine.sh up)"'
)
CONFIG_TARGET = "/etc/funker-dispatch/dispatch.toml"
FUNCTION_PORT = 9999
# Seconds, bounds only (both start within 5 s here): emulated, a start is many times slower.
LISTENING_WITHIN = 120
HEALTHY_WITHIN = 300

report, pytest_terminal_summary = report_section("arm report")


@pytest.fixture(scope="session")
def docker(report: list[str]) -> Docker:
    docker = Docker(docker_binary())
    info = docker.info()
    if info is None:
        pytest.skip(f"no Docker engine answers `{docker.binary} info`: start one ({ENGINE_UP})")
    version = docker.out("version", "--format", "server {{.Server.Version}}")
    report.append(f"engine: {version}; kernel {info.get('KernelVersion')}; {info.get('NCPU')} CPUs")
    return docker


@pytest.fixture(scope="session", params=sorted(ARCHES))
def arch(request: pytest.FixtureRequest, docker: Docker) -> Arch:
    """Each arch whose Python base image the engine holds, recorded as that arch."""
    arch = ARCHES[request.param]
    if not arch.base:
        pytest.skip(
            f"${arch.base_variable} is unset: the engine loads an {arch.name} base image "
            f"when started with FUNKER_ENGINE_ARCHES and prints that line ({ENGINE_UP})"
        )
    found = docker.run("image", "inspect", "--format", "{{.Architecture}}", arch.base, check=False)
    if found.returncode != 0 or found.stdout.strip() != arch.architecture:
        pytest.skip(
            f"${arch.base_variable}={arch.base} is no {arch.name} image in the engine's "
            f"store ({(found.stdout or found.stderr).strip()}): {ENGINE_UP}"
        )
    return arch


@pytest.fixture(scope="session")
def images(docker: Docker, arch: Arch, report: list[str]) -> Iterator[dict[str, Built]]:
    """The dispatcher and hello images for `arch`, tagged for this run; removed afterwards."""
    tag = f"{arch.name}-{secrets.token_hex(3)}"
    wanted = [
        Image("dispatcher", "Dockerfile", f"fd-arm-dispatch:{tag}"),
        Image("hello", "examples/functions/hello/Dockerfile", f"fd-arm-hello:{tag}"),
    ]
    built: dict[str, Built] = {}
    try:
        for image in wanted:
            try:
                built[image.service] = result = build(docker, image, arch)
            except DockerFailed as exc:
                pytest.fail(f"building {image.service} for {arch.name} failed: {exc}")
            report.append(
                f"{arch.name} ({arch.cpu}): built {image.service} from {image.dockerfile} in "
                f"{result.seconds:.1f} s, {result.size_bytes / 1e6:.0f} MB"
            )
        yield built
    finally:
        for result in built.values():
            docker.run("image", "rm", result.image.reference, check=False)


@pytest.fixture(scope="session")
def deployment(
    docker: Docker,
    arch: Arch,
    images: dict[str, Built],
    tmp_path_factory: pytest.TempPathFactory,
    report: list[str],
) -> Iterator[Deployment]:
    """The function, then the dispatcher, on a bridge network of their own; gone afterwards."""
    suffix = secrets.token_hex(3)
    network = f"fd-arm-{suffix}"
    function = f"fd-arm-{arch.name}-hello-{suffix}"
    dispatcher = f"fd-arm-{arch.name}-dispatcher-{suffix}"
    work = tmp_path_factory.mktemp(f"arm-{arch.name}")
    ca = DevCA.load_or_create(work / "home")
    files = {
        CONFIG_TARGET: work / "dispatch.toml",
        ROOT_TARGET: work / "devca-root.pem",
        CHAIN_TARGET: work / "devca-chain.pem",
    }
    files[CONFIG_TARGET].write_text(dispatcher_config(ca, function), encoding="utf-8")
    files[ROOT_TARGET].write_bytes(ca.root.public_bytes(Encoding.PEM))
    files[CHAIN_TARGET].write_bytes(ca.chain_path.read_bytes())
    # Mounted where the stack's Docker configs are (the dispatcher runs as uid 10001:
    # the files are world-readable, whatever the folder above them allows).
    mounts = [
        arg
        for target, source in files.items()
        for arg in ("--mount", f"type=bind,source={source},target={target},readonly")
    ]
    docker.run("network", "create", network)
    try:
        docker.run(
            "run", "--detach", "--platform", arch.platform, "--env", f"QEMU_CPU={arch.cpu}",
            "--name", function, "--network", network, images["hello"].image.reference,
        )  # fmt: skip
        wait_for(
            lambda: listening(docker, function, FUNCTION_PORT),
            LISTENING_WITHIN,
            f"the {arch.name} hello function to listen on port {FUNCTION_PORT}",
        )
        started = time.monotonic()
        docker.run(
            "run", "--detach", "--platform", arch.platform, "--env", f"QEMU_CPU={arch.cpu}",
            "--name", dispatcher, "--network", network, "--publish", "127.0.0.1::3000", *mounts,
            images["dispatcher"].image.reference,
        )  # fmt: skip
        url = f"http://{docker.lines('port', dispatcher, '3000/tcp')[0]}/"
        wait_for(
            lambda: healthy(docker, dispatcher, url),
            HEALTHY_WITHIN,
            f"the {arch.name} dispatcher's /healthz",
            every=1.0,
        )
        report.append(
            f"{arch.name}: dispatcher healthy {time.monotonic() - started:.1f} s after start"
        )
        yield Deployment(arch, network, function, dispatcher, url, ca)
    finally:
        docker.run("rm", "--force", dispatcher, function, check=False)
        docker.run("network", "rm", network, check=False)
