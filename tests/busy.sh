#!/usr/bin/env bash
# `make test-busy`: run a command (the suite) while stress-ng loads the machine as another
# tenant would (docs/robustness.md): a CPU hog on every core, memory churned and held, and loopback
# socket traffic. No test's verdict may depend on the machine being idle.
#
# stress-ng comes from Debian's packages; as root it is installed when missing.
set -euo pipefail

if ! command -v stress-ng >/dev/null; then
    if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
        echo "test-busy: installing stress-ng" >&2
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq stress-ng >/dev/null 2>&1 \
            || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq stress-ng >/dev/null; }
    else
        echo "test-busy needs stress-ng: apt-get install stress-ng (as root)" >&2
        exit 2
    fi
fi

# --cpu 0: one hog per online core; --vm: 2 workers touching 1 GiB each (churn and hold);
# --sock: loopback TCP connect/send/recv loops. Bounded: it stops with the command, or at 3 h.
stress-ng --cpu 0 --vm 2 --vm-bytes 1G --sock 2 --timeout 3h --quiet &
stress=$!
trap 'kill "$stress" 2>/dev/null || true; wait "$stress" 2>/dev/null || true' EXIT

echo "test-busy: stress-ng ($stress) loading every core, 2 GiB of memory and loopback sockets" >&2
"$@"
