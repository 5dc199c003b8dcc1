# Production image of the dispatcher: granian serving the skill on :3000 (admin on :3001).
#
# Build from the repository root with BuildKit. For this machine's platform,
# with no build arguments and nothing pulled but the base image (proven on
# Docker 20.10 with its built-in BuildKit; add --network host where build
# containers have no route out, as on the CI machine's engine):
#
#   docker build -t funker-dispatch .
#
# For the swarm's platforms at once, with current Docker, buildx and a
# registry (each platform alone is proven below, without a registry):
#
#   docker buildx build --platform linux/amd64,linux/arm64,linux/arm/v7 \
#     --build-arg VERSION=0.1.0 --build-arg SOURCE_URL="$(git remote get-url origin)" \
#     -t registry.example.com/funker-dispatch:0.1.0 --push .
#
# It always runs with a config file (the Docker config of docker-stack.yml is
# mounted at /etc/funker-dispatch/dispatch.toml), never the embedded default,
# which serves on loopback only and expects the example functions beside it.
#
# Under QEMU emulation every program runs many times slower, pip included, so
# pip resolves and downloads every wheel in a stage on the build machine's own
# CPU (fetch), told the target's interpreter and platform tags by a tiny stage
# of the target (target); the emulated stages only unpack wheels. PyPI has
# armv7l wheels of cryptography (>= 51, abi3) and granian but none of cffi and
# pyyaml, so for armv7 alone the builder gets a C toolchain and compiles what
# came as source (a minute under QEMU; the pip cache mount keeps the result
# for the next build). amd64 and arm64 never see a compiler. The base is
# pinned to a Debian release (trixie) so that release, not the day of the
# build, decides that toolchain.
#
# One platform at a time under QEMU emulation, from a base image of that
# platform in the engine's own store (`make test-arm` builds and runs arm64
# and armv7 so; ../shared/engine/docker-engine.sh makes the bases):
#
#   docker build --network host --platform linux/arm64 \
#     --build-arg PYTHON_IMAGE=funker-engine/python-arm64:3.12 \
#     --build-arg QEMU_CPU=cortex-a72 -t funker-dispatch:arm64 .
#
# QEMU_CPU, declared by every stage that runs the target's programs, is read
# by QEMU alone: the CPU it emulates. cortex-a72 is a Raspberry Pi 4's, and
# runs Debian's arm64 Python some twenty times faster than QEMU's default CPU,
# which emulates pointer authentication in software (cortex-a7, a Pi 2's,
# for armv7). Unset, as on real hardware, it changes nothing.

ARG PYTHON_IMAGE=python:3.12-slim-trixie
# The fetch stage runs on the build machine's platform, so its base must exist
# for that platform, which PYTHON_IMAGE need not (a local arm64-only image).
ARG BUILD_PYTHON_IMAGE=python:3.12-slim-trixie
# TARGETARCH and TARGETVARIANT, which pick the toolchain stage below, and
# BUILDPLATFORM are BuildKit's automatic platform arguments, already in the
# global scope for FROM. They are deliberately not declared here: Docker
# 20.10's built-in BuildKit (0.8) lets an `ARG TARGETARCH` without a value
# blank them, and `FROM toolchain-` then fails with "invalid reference format".
# No `# syntax=` line either: that BuildKit would pull the frontend image from
# Docker Hub; the built-in frontend already knows RUN --mount.

# --- toolchain: nothing extra where PyPI has wheels --------------------------
# One stage per platform; a platform without one (say linux/386) fails the
# build naming the missing toolchain-<arch><variant> stage.
FROM ${PYTHON_IMAGE} AS toolchain-amd64
FROM ${PYTHON_IMAGE} AS toolchain-arm64
FROM ${PYTHON_IMAGE} AS toolchain-arm64v8

FROM ${PYTHON_IMAGE} AS toolchain-armv7
ARG QEMU_CPU
# cffi's C extension links libffi. Python's headers come with the official
# image; Debian's own python3 (the engine's ARM bases) needs python3-dev.
# Versions follow the Debian release of the base image: pinning Debian
# revisions breaks the build as soon as a security update replaces them.
# hadolint ignore=DL3008
RUN include="$(python -c 'import sysconfig; print(sysconfig.get_path("include"))')" \
    && packages="gcc libc6-dev libffi-dev" \
    && if [ ! -e "$include/Python.h" ]; then packages="$packages python3-dev"; fi \
    && apt-get update \
    && apt-get install -y --no-install-recommends $packages \
    && rm -rf /var/lib/apt/lists/*

# --- target: what the image's interpreter takes ------------------------------
# Its tags (interpreter, ABIs, platforms, most specific first) as the
# [download] section of a pip config, and the dependencies whose environment
# markers hold on it (uvloop's do not on armv7l): pip on another CPU would
# judge both by its own.
FROM ${PYTHON_IMAGE} AS target
ARG QEMU_CPU
COPY pyproject.toml /target/
RUN python -c "import sys, tomllib; \
from pip._vendor.packaging.requirements import Requirement; \
from pip._vendor.packaging.tags import interpreter_name, sys_tags; \
tags = list(sys_tags()); \
listed = tomllib.load(open('/target/pyproject.toml', 'rb'))['project']['dependencies']; \
wanted = [r for r in map(Requirement, listed) if r.marker is None or r.marker.evaluate()]; \
open('/target/requirements.txt', 'w').write(''.join(str(r).split(';')[0] + '\n' for r in wanted)); \
open('/target/pip.conf', 'w').write('[download]\n' \
    + 'implementation = ' + interpreter_name() + '\n' \
    + 'python-version = %d.%d\n' % sys.version_info[:2] \
    + 'abi = ' + ' '.join(dict.fromkeys(t.abi for t in tags)) + '\n' \
    + 'platform = ' + ' '.join(dict.fromkeys(t.platform for t in tags)) + '\n')"

# --- fetch: every wheel the target needs, on the build machine's CPU ----------
# The release of each dependency is chosen by this machine's Python (PyPI has
# a wheel of every one here), then each is downloaded for the target: its
# wheel, else its source, which the builder compiles. A dependency that only
# the target's Python would need is missing then, and the runtime stage's
# --no-index install fails naming it. The cache mount keeps PyPI's answers
# and files between builds; nothing of it lands in a layer.
FROM --platform=$BUILDPLATFORM ${BUILD_PYTHON_IMAGE} AS fetch
COPY --from=target /target/ /target/
RUN --mount=type=cache,target=/root/.cache/pip \
    pip install --quiet --dry-run --ignore-installed --report /target/resolved.json \
        -r /target/requirements.txt \
    && python -c "import json; \
print(''.join(item['metadata']['name'] + '==' + item['metadata']['version'] + '\n' \
    for item in json.load(open('/target/resolved.json'))['install']), end='')" \
        > /target/pinned.txt \
    && PIP_CONFIG_FILE=/target/pip.conf \
        pip download --quiet --no-deps --dest /wheels/deps -r /target/pinned.txt
# The project's own wheel is pure Python: built here too, after the
# dependencies, so a change of the source leaves their layers cached.
WORKDIR /src
COPY pyproject.toml README.md LICENSE ./
COPY skill/ skill/
COPY dispatch/ dispatch/
COPY verification/ verification/
COPY triggers/ triggers/
COPY funker_dispatch/ funker_dispatch/
RUN --mount=type=cache,target=/root/.cache/pip \
    pip wheel --no-deps --quiet --wheel-dir /wheels .

# --- builder: a wheel of every dependency, for the target --------------------
# BuildKit builds only the toolchain stage this line names. It is a stage of
# this file, not an image, so there is no tag to pin (hadolint cannot tell).
# hadolint ignore=DL3006
FROM toolchain-${TARGETARCH}${TARGETVARIANT} AS builder
ARG QEMU_CPU
COPY --from=fetch /wheels/deps/ /wheels/deps/
# Only sources are built (none but on armv7); the cache mount keeps wheels
# compiled under emulation between builds; nothing of it lands in a layer.
# pyyaml as pure Python, without its libyaml loader: that needs libyaml and
# a Cython run (slow under QEMU) and would serve only the CLI's dialog tests.
RUN --mount=type=cache,target=/root/.cache/pip \
    PYYAML_FORCE_LIBYAML=0 find /wheels/deps \( -name '*.tar.gz' -o -name '*.zip' \) \
        -exec pip wheel --no-deps --quiet --wheel-dir /wheels/deps {} + \
    && find /wheels/deps \( -name '*.tar.gz' -o -name '*.zip' \) -delete
COPY --from=fetch /wheels/*.whl /wheels/

# --- runtime -----------------------------------------------------------------
FROM ${PYTHON_IMAGE}

# VERSION follows pyproject.toml (a test keeps them equal); SOURCE_URL is the
# repository this image is built from, passed in by the build command.
ARG VERSION=0.1.0
ARG SOURCE_URL=""
LABEL org.opencontainers.image.title="funker-dispatch" \
      org.opencontainers.image.description="HTTPS endpoint of a custom Alexa skill whose intents are served by funker functions" \
      org.opencontainers.image.source="${SOURCE_URL}" \
      org.opencontainers.image.licenses="MIT" \
      org.opencontainers.image.version="${VERSION}"

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    FUNKER_DISPATCH_HOME=/var/lib/funker-dispatch

# For the emulated RUN below only (see the header).
ARG QEMU_CPU
# The wheels are bind-mounted, not copied, so they never take up a layer.
# --no-index: the image holds only what the fetch stage downloaded, chosen by
# this interpreter's own markers. The bytecode is compiled after, on every
# core (pip compiles one file at a time, most of this step under QEMU), so no
# process compiles it at start; the warnings it prints are the packages' own.
RUN --mount=type=bind,from=builder,source=/wheels,target=/wheels \
    pip install --no-cache-dir --no-index --no-compile --find-links=/wheels/deps /wheels/*.whl \
    && python -W ignore -m compileall -q -j 0 \
        "$(python -c 'import sysconfig; print(sysconfig.get_path("purelib"))')" \
    && groupadd --system --gid 10001 funker \
    && useradd --system --uid 10001 --gid funker --no-create-home \
        --home-dir /var/lib/funker-dispatch --shell /usr/sbin/nologin funker \
    && install -d -o funker -g funker -m 0750 /var/lib/funker-dispatch \
    && install -d -m 0755 /etc/funker-dispatch

# The interaction models give welcome and help their example phrases and the
# `intent` metric label its known names. skill.models looks for them beside
# the installed packages (DEFAULT_MODELS), and the wheel does not carry them;
# tests/test_deploy.py checks this path against skill.models.
COPY interaction_models/ /usr/local/lib/python3.12/site-packages/interaction_models/

WORKDIR /var/lib/funker-dispatch
# Numeric, so orchestrators that require a non-root uid can check it.
USER 10001:10001
EXPOSE 3000

# slim has no curl; urlopen raises (exit 1) on refusal, timeout or a non-2xx.
# A config that serves TLS directly or on another port overrides this check
# (docker-stack.yml carries its own).
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:3000/healthz', timeout=3)"]

# The server drains in-flight requests on SIGTERM within [server] graceful_timeout.
STOPSIGNAL SIGTERM
ENTRYPOINT ["funker-dispatch"]
CMD ["serve", "--config", "/etc/funker-dispatch/dispatch.toml"]
