# Production image of the dispatcher: granian serving the skill on :3000 (admin on :3001).
#
# Build from the repository root with BuildKit. For this machine's platform,
# with no build arguments and nothing pulled but the base image (proven on
# Docker 20.10 with its built-in BuildKit; add --network host where build
# containers have no route out, as on the CI machine's engine):
#
#   docker build -t funker-dispatch .
#
# For the swarm's platforms, with current Docker and buildx (not provable on
# an engine without QEMU and a registry; hadolint checks the file):
#
#   docker buildx build --platform linux/amd64,linux/arm64,linux/arm/v7 \
#     --build-arg VERSION=0.1.0 --build-arg SOURCE_URL="$(git remote get-url origin)" \
#     -t registry.example.com/funker-dispatch:0.1.0 --push .
#
# It always runs with a config file (the Docker config of docker-stack.yml is
# mounted at /etc/funker-dispatch/dispatch.toml), never the embedded default,
# which serves on loopback only and expects the example functions beside it.
#
# armv7 (Raspberry Pi 2/3 on a 32-bit OS) is supported: PyPI has no armv7
# wheels of cffi and cryptography, so for that platform alone the builder gets
# a C and Rust toolchain and compiles them (slow under QEMU; the pip cache
# mount keeps the result for the next build). amd64 and arm64 install
# PyPI's wheels and never see a compiler. The base is pinned to a Debian
# release (trixie) because its rustc must meet cryptography's minimum Rust.

ARG PYTHON_IMAGE=python:3.12-slim-trixie
# TARGETARCH and TARGETVARIANT, which pick the toolchain stage below, are
# BuildKit's automatic platform arguments, already in the global scope for
# FROM. They are deliberately not declared here: Docker 20.10's built-in
# BuildKit (0.8) lets an `ARG TARGETARCH` without a value blank them, and
# `FROM toolchain-` then fails with "invalid reference format".
# No `# syntax=` line either: that BuildKit would pull the frontend image from
# Docker Hub; the built-in frontend already knows RUN --mount.

# --- toolchain: nothing extra where PyPI has wheels --------------------------
# One stage per platform; a platform without one (say linux/386) fails the
# build naming the missing toolchain-<arch><variant> stage.
FROM ${PYTHON_IMAGE} AS toolchain-amd64
FROM ${PYTHON_IMAGE} AS toolchain-arm64
FROM ${PYTHON_IMAGE} AS toolchain-arm64v8

FROM ${PYTHON_IMAGE} AS toolchain-armv7
# Versions follow the Debian release of the base image: pinning Debian
# revisions breaks the build as soon as a security update replaces them.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends \
        build-essential cargo libffi-dev libssl-dev pkg-config rustc \
    && rm -rf /var/lib/apt/lists/*

# --- builder: the project wheel and a wheel of every dependency --------------
# BuildKit builds only the toolchain stage this line names. It is a stage of
# this file, not an image, so there is no tag to pin (hadolint cannot tell).
# hadolint ignore=DL3006
FROM toolchain-${TARGETARCH}${TARGETVARIANT} AS builder
WORKDIR /src
COPY pyproject.toml README.md LICENSE ./
COPY skill/ skill/
COPY dispatch/ dispatch/
COPY verification/ verification/
COPY triggers/ triggers/
COPY funker_dispatch/ funker_dispatch/
# The cache mount keeps wheels compiled on armv7 between builds; nothing of it
# lands in a layer.
RUN --mount=type=cache,target=/root/.cache/pip \
    pip wheel --no-deps --wheel-dir /wheels . \
    && pip wheel --wheel-dir /wheels/deps /wheels/funker_dispatch-*.whl

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

# The wheels are bind-mounted, not copied, so they never take up a layer.
# --no-index: the image holds exactly what the builder resolved.
RUN --mount=type=bind,from=builder,source=/wheels,target=/wheels \
    pip install --no-cache-dir --no-index --find-links=/wheels/deps /wheels/*.whl \
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
