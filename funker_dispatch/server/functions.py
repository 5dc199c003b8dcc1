"""The function supervisor: `[functions.NAME]` (and the embedded default's examples) as
child processes of `serve`, kept running and reloaded when their files change.

Each child runs its command in its folder with `FUNKER_PORT` (the port the
configuration assigned) and `FUNKER_HOST=127.0.0.1`. A child that exits is started
again at once — a published funker function serves one request and exits — and one
that keeps failing within a second of its start waits a little longer each time (up
to 5 s), so a syntax error does not spin a core. A change to a file under a child's
folder (watchfiles, with its default filter of editor and VCS noise) restarts it, within
a second. Each line a child prints goes to the server's log, prefixed with its name.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

from skill.settings import LocalFunction

log = logging.getLogger("funker_dispatch.functions")

#: A child that exits sooner than this after its start counts as failing to start.
QUICK_EXIT = 1.0
#: The longest wait before starting a failing child again.
MAX_BACKOFF = 5.0
#: Milliseconds watchfiles waits for more changes before reporting a batch.
DEBOUNCE_MS = 100
#: Seconds a child gets to stop on SIGTERM before it is killed.
STOP_GRACE = 5.0


class FunctionStartError(RuntimeError):
    """A function did not start listening; the message says which, where and why."""


class Child:
    """One function: its process, started again whenever it ends until the supervisor stops."""

    def __init__(self, function: LocalFunction, stopping: threading.Event) -> None:
        self.function = function
        self.stopping = stopping
        self.process: subprocess.Popen[bytes] | None = None
        self.lock = threading.Lock()
        self.reason: str | None = None  # why the current process is being stopped
        self.starts = 0
        self.last_lines: list[str] = []

    def argv(self) -> list[str]:
        command = list(self.function.command)
        if command[0] == "python":  # the dispatcher's own interpreter: nothing to install
            command[0] = sys.executable
        elif os.sep not in command[0] and shutil.which(command[0]) is None:
            raise FunctionStartError(
                f"function {self.function.name}: {command[0]!r} is not on PATH"
                + (" (install Node.js 18 or later)" if command[0] == "node" else "")
            )
        return command

    def spawn(self) -> subprocess.Popen[bytes]:
        env = {
            **os.environ,
            **self.function.env,
            "FUNKER_PORT": str(self.function.port),
            "FUNKER_HOST": "127.0.0.1",
            "PYTHONUNBUFFERED": "1",  # its lines reach the log as they are printed
        }
        process = subprocess.Popen(
            self.argv(),
            cwd=self.function.dir,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            # Its own session: Ctrl-C reaches the server, which stops it in order.
            start_new_session=True,
        )
        self.starts += 1
        threading.Thread(
            target=self._relay, args=(process,), name=f"fn-out-{self.function.name}", daemon=True
        ).start()
        return process

    def _relay(self, process: subprocess.Popen[bytes]) -> None:
        assert process.stdout is not None
        for raw in process.stdout:
            line = raw.decode("utf-8", "replace").rstrip()
            self.last_lines = [*self.last_lines[-9:], line]
            log.info("%s | %s", self.function.name, line)

    def keep(self, first: subprocess.Popen[bytes]) -> None:
        """The keeper thread: wait for the process to end, start it again, until stopping."""
        process, failures = first, 0
        while True:
            started = time.monotonic()
            code = process.wait()
            if self.stopping.is_set():
                return
            with self.lock:
                reason, self.reason = self.reason, None
            if reason is not None:  # a reload: at once, and not a failure
                log.info("function %s restarted: %s", self.function.name, reason)
                failures = 0
            else:
                quick = time.monotonic() - started < QUICK_EXIT
                failures = failures + 1 if quick and code != 0 else 0
                wait = min(MAX_BACKOFF, 0.25 * 2 ** (failures - 1)) if failures else 0.0
                log.log(
                    logging.WARNING if code else logging.INFO,
                    "function %s exited with status %s; starting it again%s",
                    self.function.name,
                    code,
                    f" in {wait:g} s" if wait else "",
                )
                if wait and self.stopping.wait(wait):
                    return
            with self.lock:
                if self.stopping.is_set():
                    return
                try:
                    process = self.process = self.spawn()
                except (OSError, FunctionStartError) as exc:
                    log.error("function %s cannot be started: %s", self.function.name, exc)
                    return

    def restart(self, reason: str) -> None:
        with self.lock:
            process = self.process
            if process is None or process.poll() is not None:
                return
            self.reason = reason
            _terminate(process)

    def stop(self) -> None:
        with self.lock:
            if self.process is not None and self.process.poll() is None:
                _terminate(self.process)


def _terminate(process: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)  # its children too (a shell, npm)


class FunctionSupervisor:
    """Starts every function, waits until each listens, keeps them running, reloads them."""

    def __init__(self, functions: Sequence[LocalFunction], *, watch: bool = True) -> None:
        self.stopping = threading.Event()
        self.children = [Child(function, self.stopping) for function in functions]
        self.watch = watch
        self._threads: list[threading.Thread] = []

    def start(self, ready_within: float = 10.0) -> None:
        """Start all; FunctionStartError (everything stopped) when one does not listen in time."""
        try:
            for child in self.children:
                child.process = child.spawn()
            deadline = time.monotonic() + ready_within
            for child in self.children:
                self._wait_listening(child, deadline, ready_within)
        except (OSError, FunctionStartError):
            self.stop()
            raise
        for child in self.children:
            assert child.process is not None
            self._thread(child.keep, child.process, name=f"fn-keep-{child.function.name}")
        if self.watch and self.children:
            self._thread(self._watch, name="fn-watch")

    def _wait_listening(self, child: Child, deadline: float, ready_within: float) -> None:
        function = child.function
        assert child.process is not None
        while not _accepts(function.port):
            code = child.process.poll()
            if code is not None or time.monotonic() > deadline:
                said = "; ".join(child.last_lines[-3:]) or "it printed nothing"
                why = (
                    f"exited with status {code}"
                    if code is not None
                    else f"did not listen on 127.0.0.1:{function.port} ($FUNKER_PORT) "
                    f"within {ready_within:g} s"
                )
                raise FunctionStartError(
                    f"function {function.name} ({' '.join(function.command)} in {function.dir}) "
                    f"{why}: {said}"
                )
            time.sleep(0.02)  # polling a child process we just started

    def _thread(self, target: object, *args: object, name: str) -> None:
        thread = threading.Thread(target=target, args=args, name=name, daemon=True)  # type: ignore[arg-type]
        thread.start()
        self._threads.append(thread)

    def _watch(self) -> None:
        from watchfiles import watch

        folders = {child.function.dir: child for child in self.children}
        for changes in watch(
            *folders,
            stop_event=self.stopping,
            debounce=DEBOUNCE_MS,
            step=50,
            raise_interrupt=False,
        ):
            for child, path in self._owners(folders, (Path(path) for _, path in changes)):
                child.restart(f"{path.relative_to(child.function.dir)} changed")

    @staticmethod
    def _owners(folders: dict[Path, Child], paths: Iterable[Path]) -> list[tuple[Child, Path]]:
        """Each child whose folder holds a changed path, once, with one of its paths."""
        owners: dict[str, tuple[Child, Path]] = {}
        for path in paths:
            for folder, child in folders.items():
                if path.is_relative_to(folder):
                    owners.setdefault(child.function.name, (child, path))
        return list(owners.values())

    def stop(self) -> None:
        self.stopping.set()
        for child in self.children:
            child.stop()
        deadline = time.monotonic() + STOP_GRACE
        for child in self.children:
            process = child.process
            if process is None:
                continue
            try:
                process.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait()


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False
