"""Loopback receivers for scripts/bench's shipping measurements, run as their own processes so that
their work is not counted against govern's: a TCP syslog receiver and an HTTP collector, both of
which read everything and answer at once. Each prints the number of messages it got on SIGTERM.

    python scripts/bench_receivers.py syslog PORT
    python scripts/bench_receivers.py http PORT
"""

from __future__ import annotations

import signal
import socket
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

received = {"messages": 0, "bytes": 0}


def syslog(port: int) -> None:
    listener = socket.create_server(("127.0.0.1", port))

    def serve(conn: socket.socket) -> None:
        with conn:
            while chunk := conn.recv(1 << 20):
                received["bytes"] += len(chunk)
                received["messages"] += chunk.count(b"<10")  # each RFC 5424 line starts with <PRI> of facility 13

    while True:
        conn, _ = listener.accept()
        threading.Thread(target=serve, args=(conn,), daemon=True).start()


def http(port: int) -> None:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            body = self.rfile.read(int(self.headers.get("content-length", "0")))
            received["bytes"] += len(body)
            received["messages"] += body.count(b'"class_uid"')
            self.send_response(200)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()


def main() -> None:
    kind, port = sys.argv[1], int(sys.argv[2])

    def report(*_: Any) -> None:
        print(f"{received['messages']} {received['bytes']}", flush=True)
        sys.exit(0)

    signal.signal(signal.SIGTERM, report)
    (syslog if kind == "syslog" else http)(port)


if __name__ == "__main__":
    main()
