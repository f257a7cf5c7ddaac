# SPDX-License-Identifier: GPL-3.0-or-later
"""``python -m radicale_plugin.serve --config FILE``: Radicale's HTTP server with the layer.

``radicale --config FILE`` serves Radicale's application as it is; this
command serves the same application wrapped by :mod:`radicale_plugin.wsgi`
(Apple's "My Card", WebDAV-Push), with Radicale's own server classes, so
``[server]`` options (hosts, SSL, max_connections, timeouts) keep their
meaning.  It reads its config as ``radicale`` does (``--config a:?b``,
``RADICALE_CONFIG``, Radicale's default paths) and takes the same option flags
(``--server-hosts``, ``--storage-filesystem-folder``, ``--logging-level``, ...),
and the plugin's (``--storage-mecard-default-region``, ...).  Under a WSGI
server, use ``radicale_plugin.wsgi:application`` instead.  SIGTERM and SIGINT
stop it after the requests in progress; then the fan-out ends its round and the
sharing database is checkpointed, so that its file alone is a complete backup.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import socket
import sys
from typing import Sequence

from radicale import Application, config, log, server, types
from radicale.log import logger

from radicale_plugin import command_line
from radicale_plugin.service import SharingService
from radicale_plugin.settings import PLUGIN_CONFIG_SCHEMA
from radicale_plugin.http.wsgi import Layer


def _configuration(paths: Sequence[str] | None,
                   options: types.CONFIG | None = None) -> config.Configuration:
    """Radicale's files (``--config``, else ``RADICALE_CONFIG``, else its default paths),
    then the options of the command line."""
    configuration = config.load(command_line.config_paths(
        os.pathsep.join(paths) if paths is not None else None))
    if options:
        configuration.update(options, "command line arguments")
    if configuration.get("storage", "type") == "radicale_plugin.storage":
        # the plugin's options are checked when its storage starts: a bad one is said now,
        # in one line, rather than in a traceback of the server's start
        configuration.copy(PLUGIN_CONFIG_SCHEMA)
    log.set_level(configuration.get("logging", "level"),
                  configuration.get("logging", "backtrace_on_debug"),
                  configuration.get("logging", "trace_filter"))
    for source, miss in configuration.sources():
        logger.info("%s %s", "Skipped missing/unreadable" if miss else "Loaded", source)
    configuration = configuration.copy()
    # as radicale.server.serve does: Radicale's own server, not an external WSGI server
    configuration.update({"server": {"_internal_server": "True"}}, "server", privileged=True)
    return configuration


def _servers(configuration: config.Configuration, application: Layer
             ) -> dict[socket.socket, server.ParallelHTTPServer]:
    use_ssl = configuration.get("server", "ssl")
    server_class = server.ParallelHTTPSServer if use_ssl else server.ParallelHTTPServer
    servers: dict[socket.socket, server.ParallelHTTPServer] = {}
    for host, port in configuration.get("server", "hosts"):
        try:
            found = socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        except OSError as e:
            logger.warning("Cannot resolve %s:%s: %s", host, port, e)
            continue
        for family, _kind, _proto, _flags, address in found:
            try:
                http = server_class(configuration, family, (str(address[0]), int(address[1])),
                                    server.RequestHandler)
            except OSError as e:
                logger.warning("Cannot listen on %s:%s: %s", address[0], address[1], e)
                continue
            http.set_app(application)  # type: ignore[arg-type]
            servers[http.socket] = http
            logger.info("Listening on %s:%s%s", address[0], address[1],
                        " with SSL" if use_ssl else "")
    if not servers:
        raise RuntimeError("no server socket could be opened; see [server] hosts")
    return servers


def serve(configuration: config.Configuration, shutdown: socket.socket,
          wakeup: socket.socket | None = None) -> None:
    """Serve until ``shutdown`` becomes readable (the loop of radicale.server.serve).

    ``wakeup`` is the read end of :func:`signal.set_wakeup_fd`: a signal may be
    delivered to any thread (the fan-out worker, the push sender...), and Python
    runs its handler only when the main thread leaves ``select``.
    """
    application = Layer(Application(configuration))
    servers = _servers(configuration, application)
    max_connections: int = configuration.get("server", "max_connections")
    logger.info("Radicale server ready (with the me-card WSGI layer)")
    try:
        while True:
            waiting: list[socket.socket] = [s for h in servers.values()
                                            for s in h.worker_sockets]
            if max_connections <= 0 or len(waiting) < max_connections:
                waiting.extend(servers)
            extra = [shutdown] + ([wakeup] if wakeup is not None else [])
            ready = set(select.select(waiting + extra, [], [])[0])
            if wakeup is not None and wakeup in ready:
                ready.discard(wakeup)
                try:
                    wakeup.recv(4096)  # the handler has run by now
                except BlockingIOError:
                    pass
                continue
            if shutdown in ready:
                logger.info("Stopping Radicale")
                break
            for http in servers.values():
                finished = http.worker_sockets.intersection(ready)
                for s in finished:
                    s.close()
                    http.worker_sockets.remove(s)
                    ready.discard(s)
                if finished:
                    http.service_actions()
            for s in ready:
                if s in servers:
                    servers[s].handle_request()
    finally:
        for http in servers.values():
            for s in http.worker_sockets:
                s.recv(1)
                s.close()
            http.server_close()


def main(argv: Sequence[str] | None = None) -> int:
    args, options = command_line.parse(argv, command_line.parser(
        "python -m radicale_plugin.serve", __doc__.split("\n\n")[0]))
    log.setup()
    with contextlib.suppress(ValueError, KeyError):  # as radicale: -D logs the config's load
        log.set_level(config.DEFAULT_CONFIG_SCHEMA["logging"]["level"]["type"](
            options.get("logging", {}).get("level", "")), True)
    try:
        configuration = _configuration(args.config, options)
    except Exception as e:
        print("radicale_plugin.serve: cannot load the config: %s" % e, file=sys.stderr)
        return 2
    stop, stop_out = socket.socketpair()
    wakeup, wakeup_in = socket.socketpair()
    for end in (wakeup, wakeup_in):
        end.setblocking(False)
    signal.set_wakeup_fd(wakeup_in.fileno())

    def on_signal(number: int, frame: object) -> None:
        stop.close()
    for number in (signal.SIGTERM, signal.SIGINT):
        signal.signal(number, on_signal)
    try:
        serve(configuration, stop_out, wakeup)
    except Exception as e:
        logger.critical("Cannot serve: %s", e, exc_info=True)
        return 1
    finally:
        # the fan-out ends its round; the database is checkpointed (also at exit otherwise)
        SharingService.close_all()
    return 0


if __name__ == "__main__":
    sys.exit(main())
