"""Faults on a real three-node swarm under a steady stream of signed Alexa requests.

What each fault of docs/deployment.md's list costs a user today: the stack across three
nodes (the dispatcher on two of them, one per node, host-mode ports behind HAProxy
health-checking /healthz; every function two replicas), a request every 0.1 s through
the balancer, and one fault at a time — a node killed (power loss), a node stopped
(shutdown), a node cut off (partition), a rolling update of the dispatcher. For each:
requests sent, answered by the function, apologies, errors, p50/p99, and how long until
ten answers in a row came from the function again.

Needs root, the engine and the cluster beside it:

    eval "$(../shared/engine/docker-engine.sh up)"            # builds the images
    FD_SWARM_HEARTBEAT=1s ../shared/engine/docker-swarm-cluster.sh up 3
    .venv/bin/python bench/cluster.py [--faults kill,update,stop,cut]

Nothing here asserts: this is the measurement the high-availability work starts from.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from cryptography.hazmat.primitives.serialization import Encoding  # noqa: E402

from tests.swarm.engine import (  # noqa: E402
    Docker,
    compose_files,
    docker_binary,
    docker_env,
    stack_images,
)
from tests.swarm.test_swarm_stack import DNSRR_FILE, STACK_FILE, TEST_OVERRIDE, trusting_config  # noqa: E402
from verification.devca import DevCA  # noqa: E402

CLUSTER = ROOT.parent / "shared" / "engine" / "docker-swarm-cluster.sh"
LB_PORT = 3080
APOLOGY = "Sorry"
PACE = 0.1  # seconds between requests
QUIET = 5.0  # seconds of stream before each fault, and after its recovery
RECOVERED_AFTER = 10  # answers in a row from the function

CLUSTER_OVERRIDE = """version: "3.8"
services:
  dispatcher:
    deploy:
      replicas: 2
      placement:
        max_replicas_per_node: 1
"""

HAPROXY = """global
    maxconn 256
defaults
    mode http
    timeout connect 2s
    timeout client 30s
    timeout server 30s
    retries 2
    option redispatch
frontend alexa
    bind 127.0.0.1:{port}
    default_backend dispatchers
backend dispatchers
    option httpchk GET /healthz
    http-check expect status 200
    default-server inter 1s fall 2 rise 2
{servers}
"""


def cluster_env() -> dict[str, str]:
    out = subprocess.run(["bash", str(CLUSTER), "env"], capture_output=True, text=True, check=True)
    env: dict[str, str] = {}
    for line in out.stdout.splitlines():
        for word in line.removeprefix("export ").split(" "):
            if "=" in word:
                key, _, value = word.partition("=")
                env[key] = value.strip("'")
    return env


@dataclass
class Sample:
    at: float
    seconds: float
    status: int | None
    speech: str
    error: str = ""

    @property
    def answered(self) -> bool:
        return self.status == 200 and "Hello, Ada" in self.speech

    @property
    def apology(self) -> bool:
        return self.status == 200 and APOLOGY in self.speech


@dataclass
class Stream:
    url: str
    ca: DevCA
    samples: list[Sample] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        from funker_dispatch.devtools.simulator import (
            SessionState,
            alexa_slots,
            encode,
            envelope,
            intent_request,
        )
        from skill.settings import DEVELOPMENT_SKILL_ID

        while not self.stop.wait(PACE):
            slots = alexa_slots(None, "HelloIntent", {"name": "Ada"}, DEVELOPMENT_SKILL_ID)
            sent = envelope(
                intent_request("HelloIntent", slots, "en-US"), SessionState(DEVELOPMENT_SKILL_ID)
            )
            body = encode(sent)
            headers = {"Content-Type": "application/json", **self.ca.sign(body)}
            started = time.monotonic()
            try:
                request = urllib.request.Request(self.url, data=body, headers=headers)
                with urllib.request.urlopen(request, timeout=10) as answer:
                    document = json.loads(answer.read())
                    speech = json.dumps(document["response"].get("outputSpeech", {}))
                    sample = Sample(started, time.monotonic() - started, answer.status, speech)
            except urllib.error.HTTPError as exc:
                sample = Sample(started, time.monotonic() - started, exc.code, "", exc.reason)
            except (OSError, ValueError) as exc:
                sample = Sample(started, time.monotonic() - started, None, "", str(exc))
            self.samples.append(sample)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--faults", default="kill,update,stop,cut")
    args = parser.parse_args()
    env = cluster_env()
    nodes = int(env["FD_SWARM_NODES"])
    engine = Docker(docker_binary())
    single = {k: v for k, v in os.environ.items() if k != "DOCKER_HOST"}
    tag = "cluster-bench"
    print(f"building the images ({tag}) on the single-node engine…", flush=True)
    images = stack_images({"REGISTRY": "", "TAG": tag})
    for image in images:
        subprocess.run(
            [engine.binary, "build", "-q", "--network", "host",
             "-f", f"{image.context}/{image.dockerfile}", "-t", image.reference, image.context],
            cwd=ROOT, env=single, check=True, capture_output=True,
        )  # fmt: skip
    print("loading them into every node…", flush=True)
    save = subprocess.Popen(
        [engine.binary, "save", *(i.reference for i in images)], stdout=subprocess.PIPE, env=single
    )
    subprocess.run(["bash", str(CLUSTER), "load", "-"], stdin=save.stdout, check=True)
    save.wait()

    manager = {**os.environ, "DOCKER_HOST": env["DOCKER_HOST_NODE1"]}
    work = Path(tempfile.mkdtemp(prefix="cluster-bench-"))
    ca = DevCA.load_or_create(work / "home")
    (work / "dispatch.toml").write_text(trusting_config(ca))
    (work / "devca-root.pem").write_bytes(ca.root.public_bytes(Encoding.PEM))
    (work / "devca-chain.pem").write_bytes(Path(ca.chain_path).read_bytes())
    (work / "cluster.yml").write_text(CLUSTER_OVERRIDE)
    name = f"fdcluster{secrets.token_hex(2)}"
    variables = {
        "REGISTRY": "", "TAG": tag, "PUBLISHED_PORT": "3000", "DISPATCH_CONFIG_VERSION": "1",
        "SWARM_TEST_NAME": name, "SWARM_TEST_DIR": str(work),
    }  # fmt: skip
    files = [STACK_FILE, DNSRR_FILE, TEST_OVERRIDE, work / "cluster.yml"]
    docker = lambda *a, **k: subprocess.run(  # noqa: E731
        [engine.binary, *a],
        env={**manager, **k.pop("env", {})},
        capture_output=True,
        text=True,
        **k,
    )
    docker("network", "create", "--driver", "overlay", "--attachable", f"{name}_funker", check=True)
    deployed = docker(
        "stack", "deploy", "--resolve-image", "never", *compose_files(files), name,
        env=docker_env(variables),
    )  # fmt: skip
    if deployed.returncode:
        print(deployed.stderr)
        return 1
    servers = "\n".join(
        f"    server node{k} {env[f'FD_SWARM_NODE{k}_IP']}:3000 check" for k in range(1, nodes + 1)
    )
    (work / "haproxy.cfg").write_text(HAPROXY.format(port=LB_PORT, servers=servers))
    haproxy = subprocess.Popen(
        ["haproxy", "-db", "-f", str(work / "haproxy.cfg")], stderr=subprocess.DEVNULL
    )
    url = f"http://127.0.0.1:{LB_PORT}/"
    print(f"stack {name} deployed; waiting for answers through HAProxy…", flush=True)
    probe = Stream(url, ca)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        probe.samples.clear()
        probe.stop.clear()
        t = threading.Thread(target=probe.run)
        t.start()
        time.sleep(1.0)
        probe.stop.set()
        t.join()
        if probe.samples and all(s.answered for s in probe.samples):
            break
    else:
        print("the stack never answered", file=sys.stderr)
        return 1

    def tasks(service: str) -> dict[str, str]:
        out = docker("service", "ps", "--filter", "desired-state=running", "--format",
                     "{{.Node}} {{.CurrentState}}", f"{name}_{service}").stdout  # fmt: skip
        # Desired running: a dispatcher shows "Starting" until its first health check,
        # while it already serves.
        return {line.split()[0]: line for line in out.splitlines() if line.strip()}

    print("dispatcher on:", sorted(tasks("dispatcher")), " hello on:", sorted(tasks("hello")))
    rows = []
    for fault in args.faults.split(","):
        stream = Stream(url, ca)
        thread = threading.Thread(target=stream.run)
        thread.start()
        time.sleep(QUIET)
        began = time.monotonic()
        # A worker running a dispatcher and a hello task: the worst node to lose.
        both = set(tasks("dispatcher")) & set(tasks("hello"))
        victim = next((n for n in sorted(both) if n != "fdnode1"), None) or next(
            (n for n in sorted(tasks("dispatcher")) if n != "fdnode1"), "fdnode2"
        )
        k = victim.removeprefix("fdnode")
        if fault == "kill":
            subprocess.run(["bash", str(CLUSTER), "kill-node", k], check=True, capture_output=True)
        elif fault == "stop":
            subprocess.run(["bash", str(CLUSTER), "stop-node", k], check=True, capture_output=True)
        elif fault == "cut":
            subprocess.run(["bash", str(CLUSTER), "cut-node", k], check=True, capture_output=True)
        elif fault == "update":
            docker("service", "update", "--force", "--detach", f"{name}_dispatcher", check=True)
        # Recovered: RECOVERED_AFTER answers in a row after the fault, then QUIET more.
        recovered = None
        until = began + 180
        while time.monotonic() < until:
            time.sleep(0.5)
            after = [s for s in stream.samples if s.at >= began]
            run = 0
            for s in after:
                run = run + 1 if s.answered else 0
                if (
                    run >= RECOVERED_AFTER
                    and recovered is None
                    and any(not x.answered for x in after)
                ):
                    recovered = s.at - began
            if (
                fault == "update"
                and "completed"
                not in docker(
                    "service",
                    "inspect",
                    "--format",
                    "{{.UpdateStatus.State}}",
                    f"{name}_dispatcher",
                ).stdout
            ):
                continue
            if time.monotonic() - began > 30 and (
                recovered is not None or all(x.answered for x in after)
            ):
                break
        time.sleep(QUIET)
        stream.stop.set()
        thread.join()
        if fault in ("kill", "stop"):
            subprocess.run(["bash", str(CLUSTER), "start-node", k], check=True, capture_output=True)
        elif fault == "cut":
            subprocess.run(["bash", str(CLUSTER), "heal-node", k], check=True, capture_output=True)
        samples = stream.samples
        latencies = sorted(s.seconds for s in samples)
        rows.append(
            (
                f"{fault} {victim if fault != 'update' else 'dispatcher'}",
                len(samples),
                sum(s.answered for s in samples),
                sum(s.apology for s in samples),
                sum(not s.answered and not s.apology for s in samples),
                statistics.median(latencies) * 1000,
                latencies[int(len(latencies) * 0.99) - 1] * 1000,
                "-" if recovered is None else f"{recovered:.1f} s",
            )
        )
        errors = {
            s.error or f"HTTP {s.status}" for s in samples if not s.answered and not s.apology
        }
        print(f"{rows[-1]} errors: {sorted(errors)[:4]}", flush=True)
        time.sleep(10)  # the node back in the swarm before the next fault
    print()
    header = ("fault", "sent", "function", "apology", "errors", "p50 ms", "p99 ms")
    print(f"{header[0]:<22}" + "".join(f"{h:>9}" for h in header[1:]) + "  recovered")
    for row in rows:
        cells = [f"{row[1]:>9}", f"{row[2]:>9}", f"{row[3]:>9}", f"{row[4]:>9}"]
        cells += [f"{row[5]:>9.0f}", f"{row[6]:>9.0f}"]
        print(f"{row[0]:<22}" + "".join(cells) + f"  {row[7]}")
    haproxy.terminate()
    docker("stack", "rm", name)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
