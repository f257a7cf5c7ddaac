# SPDX-License-Identifier: GPL-3.0-or-later
"""``python -m radicale_plugin.serve --config FILE``: Radicale's HTTP server with the layer.

``radicale --config FILE`` serves Radicale's application as it is; this
command serves the same application wrapped by :mod:`radicale_plugin.wsgi`
(Apple's "My Card", WebDAV-Push), with Radicale's own server classes, so
``[server]`` options (hosts, SSL, max_connections, timeouts) keep their
meaning.  Under a WSGI server, use ``radicale_plugin.wsgi:application``
instead.  SIGTERM and SIGINT stop it after the requests in progress.
"""

from __future__ import annotations

import argparse
import os
import select
import signal
import socket
import sys
from typing import Sequence

from radicale import Application, config, log, server
from radicale.log import logger

from radicale_plugin.wsgi import Layer


def _configuration(paths: str) -> config.Configuration:
    configuration = config.load(config.parse_compound_paths(config.DEFAULT_CONFIG_PATH,
                                                           paths))
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
    parser = argparse.ArgumentParser(prog="python -m radicale_plugin.serve",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default=os.environ.get("RADICALE_CONFIG", ""),
                        help="Radicale config file(s), separated by ':' as for radicale")
    args = parser.parse_args(argv)
    log.setup()
    try:
        configuration = _configuration(args.config)
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
    return 0


if __name__ == "__main__":
    sys.exit(main())
