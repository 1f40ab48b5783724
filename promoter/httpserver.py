"""The HTTP server under promoter's own loopback services (the simulated API servers, the local
forge's pages): the standard library's threading server, with a backlog that takes a burst of
clients. Its default of 5 pending connections resets the rest when twenty arrive at once, which a
real API server or forge never does."""

from __future__ import annotations

from http.server import ThreadingHTTPServer


class Server(ThreadingHTTPServer):
    daemon_threads = True  # a request in flight never holds up the process's exit
    request_queue_size = 128  # connections waiting to be accepted
