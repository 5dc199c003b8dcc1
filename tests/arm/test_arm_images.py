"""The dispatcher and a function on the boards the project was made for: arm64 and armv7.

Both images are built from the working tree for each arch and run under QEMU
emulation on the local engine (tests/arm/conftest.py); the dispatcher then
answers a signed HelloIntent from outside with the function's own speech.
"""

from __future__ import annotations

import json
import time

from tests.arm.emulation import Arch, Deployment
from tests.cluster.traffic import hello_body, post
from tests.swarm.engine import Built, Docker

# examples/functions/hello/function.py's answer to the slot name=Ada.
GREETING = "Hello, Ada!"


def test_both_images_record_the_arch_they_were_built_for(
    docker: Docker, arch: Arch, images: dict[str, Built]
):
    for built in images.values():
        (image,) = docker.inspect("image", "inspect", built.image.reference)
        recorded = (image["Os"], image["Architecture"], image.get("Variant", ""))
        assert recorded[:2] == ("linux", arch.architecture), (built.image.service, recorded)
        assert recorded[2] in arch.variants, (built.image.service, recorded)


def test_dispatcher_answers_a_signed_hello_with_the_functions_speech(
    deployment: Deployment, report: list[str]
):
    body = hello_body()
    started = time.monotonic()
    status, answer, error = post(deployment.url, body, deployment.ca.sign(body))
    seconds = time.monotonic() - started
    assert status == 200, error or answer[:500]
    speech = json.dumps(json.loads(answer)["response"].get("outputSpeech", {}))
    assert GREETING in speech, speech
    report.append(f"{deployment.arch.name}: signed HelloIntent answered in {seconds:.2f} s")


def test_dispatcher_and_function_processes_run_as_the_arch(docker: Docker, deployment: Deployment):
    probe = ["python", "-c", "import platform; print(platform.machine())"]
    for container in (deployment.dispatcher, deployment.function):
        assert docker.out("exec", container, *probe) == deployment.arch.machine, container


def test_installed_skill_finds_the_interaction_models_on_the_arch_base(
    docker: Docker, deployment: Deployment
):
    # The image copies them to .../python3.12/site-packages; on the ARM bases that is
    # a link to Debian's python3.13, where the installed skill looks.
    probe = "from skill.models import DEFAULT_MODELS as d; print(d, (d / 'skill.json').is_file())"
    found = docker.out("exec", deployment.dispatcher, "python", "-c", probe)
    assert found.endswith(" True"), found
