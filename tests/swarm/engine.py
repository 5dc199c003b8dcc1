"""A real Docker engine through its CLI: bounded calls, the stack's images, polls with deadlines.

Everything goes through the `docker` binary (`$DOCKER`, else the one on PATH),
as an operator would, so the tests prove the commands the README gives. Every
call has a timeout; every wait is a poll of a condition against a deadline.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import yaml

from tests.helpers import wait_until

ROOT = Path(__file__).resolve().parents[2]
STACK_FILE = ROOT / "docker-stack.yml"
DNSRR_FILE = ROOT / "deploy" / "stack.dnsrr.yml"
EXAMPLES = ROOT / "examples" / "functions"
# Variables docker-stack.yml interpolates (the operator's interface).
STACK_VARIABLES = ("REGISTRY", "TAG", "PUBLISHED_PORT", "DISPATCH_CONFIG_VERSION")

T = TypeVar("T")


class DockerFailed(AssertionError):
    """A docker command exited non-zero (or ran out of time)."""


def docker_binary() -> str:
    """`$DOCKER` (the engine script prints the engine's own 20.10 CLI), else `docker` on PATH."""
    return os.environ.get("DOCKER") or shutil.which("docker") or "docker"


@dataclass(frozen=True)
class Docker:
    binary: str

    def run(
        self,
        *args: str,
        timeout: float = 60,
        env: Mapping[str, str] | None = None,
        check: bool = True,
    ) -> subprocess.CompletedProcess[str]:
        command = [self.binary, *args]
        try:
            result = subprocess.run(
                command,
                capture_output=True,
                text=True,
                cwd=ROOT,
                env=dict(env) if env is not None else None,
                timeout=timeout,
            )
        except subprocess.TimeoutExpired:
            raise DockerFailed(f"{' '.join(command)}: no answer within {timeout} s") from None
        except FileNotFoundError:
            raise DockerFailed(f"{self.binary}: no such program") from None
        if check and result.returncode != 0:
            raise DockerFailed(
                f"{' '.join(command)} exited {result.returncode}:\n{result.stderr.strip()}"
            )
        return result

    def out(self, *args: str, timeout: float = 60) -> str:
        return self.run(*args, timeout=timeout).stdout.strip()

    def lines(self, *args: str, timeout: float = 60) -> list[str]:
        return [line for line in self.out(*args, timeout=timeout).splitlines() if line.strip()]

    def inspect(self, *args: str) -> list[dict[str, Any]]:
        """`docker <object> inspect` as JSON (one dict per object)."""
        return json.loads(self.out(*args))

    def info(self) -> dict[str, Any] | None:
        """The engine's `docker info`, or None when no engine answers."""
        try:
            result = self.run("info", "--format", "{{json .}}", timeout=20, check=False)
        except DockerFailed:
            return None
        if result.returncode != 0:
            return None
        info = json.loads(result.stdout)
        # An unreachable daemon can still print a document, holding only errors.
        return info if info.get("ServerVersion") else None


def wait_for(condition: Callable[[], T], within: float, what: str, every: float = 0.5) -> T:
    """tests.helpers.wait_until, polled every half second: each poll is a docker CLI call."""
    return wait_until(condition, within, what, every)


# --- the stack file's images --------------------------------------------------

_VARIABLE = re.compile(r"\$\{(?P<name>\w+)(?::-(?P<default>[^}]*))?\}")


def interpolate(text: str, variables: Mapping[str, str]) -> str:
    """Compose's `${NAME}` and `${NAME:-default}` (an empty value takes the default)."""

    def value(match: re.Match[str]) -> str:
        given = variables.get(match["name"], "")
        if given or match["default"] is None:
            return given
        return match["default"]

    result = _VARIABLE.sub(value, text)
    assert "$" not in result, f"unsupported interpolation in {text!r}"
    return result


@dataclass(frozen=True)
class Image:
    """One image the stack runs, and how to build it from the working tree."""

    service: str
    dockerfile: str  # relative to the build context
    reference: str  # the stack's `image:` with the variables filled in
    context: str = "."  # relative to the repository root: "." or a self-contained folder


def stack_services() -> dict[str, dict[str, Any]]:
    return yaml.safe_load(STACK_FILE.read_text(encoding="utf-8"))["services"]


def stack_images(variables: Mapping[str, str]) -> list[Image]:
    """Every service of docker-stack.yml that has a `build:` (all of them, today)."""
    images = []
    for name, service in stack_services().items():
        build = service.get("build")
        if build is None:
            continue
        images.append(
            Image(
                name,
                build.get("dockerfile", "Dockerfile"),
                interpolate(service["image"], variables),
                build.get("context", "."),
            )
        )
    return images


def example_functions() -> list[str]:
    """Folders of examples/functions/ that hold a Dockerfile: each is a stack service."""
    return sorted(path.parent.name for path in EXAMPLES.glob("*/Dockerfile"))


@dataclass
class Built:
    image: Image
    seconds: float
    size_bytes: int


def build(docker: Docker, image: Image, timeout: float = 900) -> Built:
    """`docker build -f <Dockerfile> <context>` from the repository root, as the Dockerfile
    headers say: the root, or a function's own folder (a Node function).

    --network host: the CI machine's engine gives build containers no route
    out (dockerd --iptables=false), and pip needs PyPI. No build argument.
    """
    started = time.monotonic()
    docker.run(
        "build",
        "--network",
        "host",
        "-f",
        f"{image.context}/{image.dockerfile}",
        "-t",
        image.reference,
        image.context,
        timeout=timeout,
    )
    seconds = time.monotonic() - started
    (details,) = docker.inspect("image", "inspect", image.reference)
    return Built(image, seconds, int(details["Size"]))


def docker_env(variables: Mapping[str, str]) -> dict[str, str]:
    """This process's environment with the stack's variables exactly as given (others unset)."""
    environ = {k: v for k, v in os.environ.items() if k not in STACK_VARIABLES}
    return {**environ, **variables}


def compose_files(files: Sequence[Path]) -> list[str]:
    return [arg for path in files for arg in ("-c", str(path))]
