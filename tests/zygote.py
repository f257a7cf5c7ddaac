# SPDX-License-Identifier: GPL-3.0-or-later
"""A fork server for the test servers: Radicale imported once, each server forked from it.

A test run starts ~350 servers; each ``python -m radicale_plugin.serve`` spends ~0.4 CPU-s
importing Radicale and the plugin before it serves.  One zygote per pytest worker imports
them once (``python tests/zygote.py SOCKET``), then forks a child per server; the child
runs the launcher as ``python -m`` would (``runpy``, ``sys.argv``, its own environment, cwd,
session and log file), so the server behaves as a fresh process: its own random state,
logging set up by its own ``main``, default signal handlers, atexit handlers at its end.

Before a fork the zygote has one thread, no sqlite connection and no socket but its control
socket (it checks its threads after the imports, and refuses to serve otherwise).  The
protocol is one JSON line each way per connection on the UNIX socket ``SOCKET``:

- ``{"op": "spawn", "argv", "env", "cwd", "log"}`` -> ``{"pid"}`` (optional ``"stdin"`` and
  ``"stderr"``: files instead of nothing and the log: :func:`run` captures a command so)
- ``{"op": "poll", "pid"}`` -> ``{"returncode"}`` (``None`` while it runs, ``-N`` for signal N)

The zygote ends when its stdin (a pipe from the pytest worker) closes or on
``{"op": "quit"}``; then it stops the servers still running (SIGTERM, then SIGKILL).
:class:`tests.server.Forked` is the test side.
"""

from __future__ import annotations

import atexit
import contextlib
import importlib
import json
import os
import runpy
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback

#: what ``python -m radicale_plugin.serve`` imports before and while it starts with the test
#: config (measured with ``-X importtime``): storage, auth, rights, web, pages
WARM = ("radicale_plugin.serve", "radicale.server", "radicale.app", "radicale.auth.htpasswd",
        "radicale.rights.owner_only", "radicale.rights.authenticated",
        "radicale.storage.multifilesystem", "radicale_plugin.storage", "radicale_plugin.web",
        "radicale_plugin.vcard.behaviors", "radicale_plugin.http.pages", "passlib.hash",
        "passlib.handlers.md5_crypt", "passlib.handlers.sha2_crypt",
        "cryptography.hazmat.backends.openssl.backend", "encodings.idna", "stringprep",
        "timeit", "importlib.readers", "importlib.resources.readers",
        # the admin commands (``python -m radicale_plugin ...``, :func:`run`)
        "radicale_plugin.command_line", "radicale_plugin.admin.commands",
        "radicale_plugin.admin.backup", "radicale_plugin.admin.migrate",
        "radicale_plugin.storage.postgres", "radicale_plugin.index.postgres")

#: environment variables Python reads at its start only: a server whose environment differs
#: in one of them cannot be forked from this zygote (the test side starts it with Popen)
STARTUP = ("PYTHON", "LC_", "LANG")


def startup_environment(env: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in env.items() if k.startswith(STARTUP)}


def _exit_code(code: object) -> int:
    """What the interpreter makes of ``sys.exit(code)``."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    print(code, file=sys.stderr)
    return 1


def _child(request: dict, closing: list[socket.socket]) -> None:
    """In the forked child: become ``python -m LAUNCHER ARGS`` and never return."""
    code = 1
    try:
        for sock in closing:
            sock.close()
        os.setsid()
        given = os.open(request.get("stdin") or os.devnull, os.O_RDONLY)
        out = os.open(request["log"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        err = os.open(request.get("stderr") or request["log"],
                      os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        os.dup2(given, 0)
        os.dup2(out, 1)
        os.dup2(err, 2)
        for fd in (given, out, err):
            os.close(fd)
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        time.tzset()
        argv = request["argv"]  # [python, "-m", launcher, args...]
        launcher = argv[2]
        sys.argv = [argv[0], *argv[3:]]
        sys.path[0] = request["cwd"]  # as -m puts the working directory first
        # run as __main__ as -m does: not also under its own name (runpy would warn)
        # (a package runs its ``__main__``: the package itself stays imported, as with -m)
        package = hasattr(sys.modules.get(launcher), "__path__")
        sys.modules.pop(launcher + ".__main__" if package else launcher, None)
        try:
            runpy.run_module(launcher, run_name="__main__", alter_sys=True)
            code = 0
        except SystemExit as stop:
            code = _exit_code(stop.code)
        except KeyboardInterrupt:
            traceback.print_exc()
            code = -signal.SIGINT
        except BaseException:
            traceback.print_exc()
            code = 1
        # what the interpreter does at its end: join the non-daemon threads, then atexit
        threading._shutdown()  # type: ignore[attr-defined]
        atexit._run_exitfuncs()
    except BaseException:
        try:
            traceback.print_exc()
        except BaseException:
            pass
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except BaseException:
                pass
        if code == -signal.SIGINT:  # as Python does after an uncaught KeyboardInterrupt
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGINT)
        os._exit(code & 0xFF)


class Zygote:
    """The fork server's loop: accept, answer, reap."""

    def __init__(self, path: str) -> None:
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(path)
        self.listener.listen(64)
        self.children: dict[int, int | None] = {}  # pid -> return code (None: running)

    def reap(self) -> None:
        for pid, code in self.children.items():
            if code is None:
                try:
                    done, status = os.waitpid(pid, os.WNOHANG)
                except ChildProcessError:
                    continue
                if done:
                    self.children[pid] = os.waitstatus_to_exitcode(status)

    def answer(self, request: dict, connection: socket.socket) -> dict:
        op = request.get("op")
        if op == "spawn":
            sys.stdout.flush()
            sys.stderr.flush()
            pid = os.fork()
            if pid == 0:
                _child(request, [connection, self.listener])
            self.children[pid] = None
            return {"pid": pid}
        if op == "poll":
            pid = int(request["pid"])
            if pid not in self.children:
                return {"error": "no child %d" % pid}
            self.reap()
            return {"returncode": self.children[pid]}
        if op == "quit":
            raise SystemExit(0)
        return {"error": "unknown op %r" % op}

    def serve(self) -> None:
        while True:
            ready = select.select([self.listener, sys.stdin], [], [], 1.0)[0]
            self.reap()
            if sys.stdin in ready and not os.read(sys.stdin.fileno(), 4096):
                return  # the pytest worker has gone
            if self.listener not in ready:
                continue
            connection, _ = self.listener.accept()
            with connection:
                data = b""
                while not data.endswith(b"\n"):
                    chunk = connection.recv(65536)
                    if not chunk:
                        break
                    data += chunk
                if not data:
                    continue
                try:
                    reply = self.answer(json.loads(data), connection)
                except SystemExit:
                    connection.sendall(b'{"bye": true}\n')
                    raise
                connection.sendall(json.dumps(reply).encode() + b"\n")

    def stop_children(self) -> None:
        """Servers a test left running end with the run, not after it."""
        self.reap()
        running = [pid for pid, code in self.children.items() if code is None]
        for pid in running:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + 5
        while running and time.monotonic() < deadline:
            self.reap()
            running = [pid for pid in running if self.children[pid] is None]
            time.sleep(0.05)
        for pid in running:
            try:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
            except (ProcessLookupError, ChildProcessError):
                pass


# -- the test side -------------------------------------------------------------------------

class ZygoteGone(RuntimeError):
    """The zygote cannot be asked any more (it died): the test fails saying so."""


class Client:
    """This worker's zygote: started on the first spawn, stopped at the worker's exit."""

    def __init__(self) -> None:
        self.folder = tempfile.mkdtemp(prefix="mecard-zygote-")
        self.path = os.path.join(self.folder, "control")
        self.log = os.path.join(self.folder, "zygote.log")
        self.env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, os.path.abspath(__file__), self.path], env=self.env,
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log)
        assert self.process.stdout is not None
        said = self.process.stdout.readline()  # the imports take a moment: wait for them
        if said != b"zygote: ready\n":
            self.process.wait()
            raise ZygoteGone("the test zygote did not start: %s" % self.said())
        atexit.register(self.close)

    def said(self) -> str:
        with open(self.log, encoding="utf-8", errors="replace") as log:
            return log.read()[-3000:] or "(nothing in %s)" % self.log

    def ask(self, request: dict) -> dict:
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.settimeout(30)
                sock.connect(self.path)
                sock.sendall(json.dumps(request).encode() + b"\n")
                data = b""
                while not data.endswith(b"\n"):
                    chunk = sock.recv(65536)
                    if not chunk:
                        break
                    data += chunk
            reply = json.loads(data)
        except (OSError, ValueError) as e:
            raise ZygoteGone("the test zygote (pid %d, exit %r) does not answer %s: %s; "
                             "its log: %s" % (self.process.pid, self.process.poll(),
                                              request.get("op"), e, self.said())) from e
        if "error" in reply:
            raise ZygoteGone("the test zygote refused %r: %s" % (request, reply["error"]))
        return reply

    def close(self) -> None:
        if self.process.poll() is None:
            try:
                self.ask({"op": "quit"})
            except ZygoteGone:
                pass
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        shutil.rmtree(self.folder, ignore_errors=True)


class Forked:
    """A server forked by the zygote, with the part of ``subprocess.Popen`` the tests use."""

    def __init__(self, client: Client, pid: int, args: list[str]) -> None:
        self.client, self.pid, self.args = client, pid, args
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None:
            self.returncode = self.client.ask({"op": "poll", "pid": self.pid})["returncode"]
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.poll() is None:
            if deadline is not None and time.monotonic() > deadline:
                raise subprocess.TimeoutExpired(self.args, timeout or 0)
            time.sleep(0.01)
        assert self.returncode is not None
        return self.returncode

    def send_signal(self, sig: int) -> None:
        if self.poll() is None:  # never a signal to a pid the system may have reused
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, sig)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


_client: Client | None = None


def spawn(argv: list[str], env: dict[str, str], cwd: str, log: object,
          stdin: str = "", stderr: str = "") -> Forked | None:
    """Fork ``argv`` (``python -m LAUNCHER ...``) from this worker's zygote; ``None``: start
    it with Popen instead (``MECARD_TEST_NO_ZYGOTE=1``, or an environment Python reads at
    its start that differs from the zygote's)."""
    global _client
    if os.environ.get("MECARD_TEST_NO_ZYGOTE") == "1" or argv[:2] != [sys.executable, "-m"]:
        return None
    if _client is None or _client.process.poll() is not None:
        _client = Client()  # the first server of this worker, or its zygote died: a new one
    if startup_environment(env) != startup_environment(_client.env):
        return None
    reply = _client.ask({"op": "spawn", "argv": argv, "env": env, "cwd": cwd,
                         "log": str(log), "stdin": stdin, "stderr": stderr})
    return Forked(_client, int(reply["pid"]), argv)


def run(argv: list[str], *, input: str | None = None, env: dict[str, str] | None = None,
        cwd: str | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    """``subprocess.run(argv, capture_output=True, text=True, ...)`` for ``python -m ...``
    commands (the admin commands), forked from the worker's zygote when it can: a command
    then costs a fork instead of ~0.5 CPU-s of imports, and the suite runs ~200 of them."""
    env = dict(os.environ if env is None else env)
    cwd = cwd or os.getcwd()
    with tempfile.TemporaryDirectory(prefix="mecard-run-") as folder:
        paths = {name: os.path.join(folder, name) for name in ("stdin", "stdout", "stderr")}
        with open(paths["stdin"], "w", encoding="utf-8") as given:
            given.write(input or "")
        forked = spawn(argv, env, cwd, paths["stdout"], stdin=paths["stdin"],
                       stderr=paths["stderr"])
        if forked is None:
            return subprocess.run(argv, input=input, env=env, cwd=cwd, capture_output=True,
                                  text=True, timeout=timeout)
        try:
            code = forked.wait(timeout)
        except subprocess.TimeoutExpired:
            forked.kill()
            forked.wait(10)
            raise

        def read(name: str) -> str:
            try:
                with open(paths[name], encoding="utf-8", errors="replace",
                          newline=None) as f:
                    return f.read()
            except FileNotFoundError:
                return ""
        return subprocess.CompletedProcess(argv, code, read("stdout"), read("stderr"))


def main() -> int:
    path = sys.argv[1]
    # as ``python -m``: the working directory first on the path, not this file's folder
    sys.path[0] = os.getcwd()
    for name in WARM:
        try:
            importlib.import_module(name)
        except ImportError as e:
            print("zygote: not warmed: %s: %s" % (name, e), file=sys.stderr)
    threads = threading.enumerate()
    tasks = os.listdir("/proc/self/task") if os.path.isdir("/proc/self/task") else ["1"]
    if len(threads) != 1 or len(tasks) != 1:
        print("zygote: the imports started threads (%r): a fork would lose them; not serving"
              % threads, file=sys.stderr)
        return 3
    zygote = Zygote(path)
    print("zygote: ready", flush=True)  # the test side waits for this line
    try:
        zygote.serve()
    except SystemExit:
        pass
    finally:
        zygote.stop_children()
        zygote.listener.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
