"""A loopback TCP proxy in front of PostgreSQL that a test switches between three modes:

- ``up``: bytes flow both ways;
- ``refuse``: every connection is closed and the port stops listening (a restart, a failover, a
  killed proxy);
- ``stall``: connections are accepted and kept, nothing is forwarded (a server that never answers).
  Leaving ``stall`` closes what was held, as a server restarted after a hang would.

Also runnable on its own for bench/faults.py: ``python tests/pgproxy.py LISTEN_PORT CONTROL_PORT``, then
``echo stall | nc 127.0.0.1 CONTROL_PORT``.
"""

from __future__ import annotations

import contextlib
import select
import socket
import sys
import threading
import time


class PgProxy:
    def __init__(self, target: tuple[str, int] = ("127.0.0.1", 5432), port: int = 0) -> None:
        self.target = target
        self.mode = "up"
        self._lock = threading.Lock()
        self._pairs: list[tuple[socket.socket, socket.socket | None]] = []
        self._listener: socket.socket | None = None
        self.port = port
        self._listen()
        self._stopped = False

    # -- control -------------------------------------------------------------------------------
    def set(self, mode: str) -> None:
        assert mode in ("up", "refuse", "stall"), mode
        with self._lock:
            previous, self.mode = self.mode, mode
        if mode == "refuse" or (previous == "stall" and mode == "up"):
            self._close_all()
        if mode == "refuse":
            listener, self._listener = self._listener, None
            if listener is not None:
                with contextlib.suppress(OSError):
                    listener.close()
        elif self._listener is None:
            self._listen()

    def close(self) -> None:
        self._stopped = True
        self.set("refuse")

    def __enter__(self) -> PgProxy:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- plumbing ------------------------------------------------------------------------------
    def _listen(self) -> None:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        for _ in range(50):  # the port may linger a moment after a refuse
            try:
                listener.bind(("127.0.0.1", self.port))
                break
            except OSError:
                time.sleep(0.05)
        listener.listen(64)
        self.port = listener.getsockname()[1]
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            pair: list = [client, None]
            with self._lock:
                self._pairs.append(pair)
            threading.Thread(target=self._pump, args=(pair,), daemon=True).start()

    def _pump(self, pair: list) -> None:
        client = pair[0]
        try:
            while self.mode == "stall" and pair in self._pairs:
                time.sleep(0.02)  # held: not even connected upstream
            if self.mode != "up" or pair not in self._pairs:
                return
            upstream = socket.create_connection(self.target, timeout=5)
            upstream.settimeout(None)
            pair[1] = upstream
            while pair in self._pairs:
                if self.mode == "stall":
                    time.sleep(0.02)
                    continue
                readable, _, _ = select.select([client, upstream], [], [], 0.05)
                for sock in readable:
                    data = sock.recv(65536)
                    if not data:
                        return
                    (upstream if sock is client else client).sendall(data)
        except OSError:
            return
        finally:
            self._drop(pair)

    def _drop(self, pair: list) -> None:
        with self._lock:
            if pair in self._pairs:
                self._pairs.remove(pair)
        for sock in pair:
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                with contextlib.suppress(OSError):
                    sock.close()

    def _close_all(self) -> None:
        with self._lock:
            pairs = list(self._pairs)
        for pair in pairs:
            self._drop(pair)


def proxied_url(url: str, port: int) -> str:
    """``url`` with its host and port replaced by the proxy's."""
    from sqlalchemy.engine import make_url

    return make_url(url).set(host="127.0.0.1", port=port).render_as_string(hide_password=False)


def main() -> None:  # pragma: no cover - used by bench/faults.py
    listen, control = int(sys.argv[1]), int(sys.argv[2])
    proxy = PgProxy(port=listen)
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", control))
    server.listen(8)
    print(f"proxy 127.0.0.1:{proxy.port} -> 127.0.0.1:5432, control 127.0.0.1:{control}", flush=True)
    while True:
        conn, _ = server.accept()
        with conn:
            command = conn.recv(64).decode().strip()
            if command in ("up", "refuse", "stall"):
                proxy.set(command)
                conn.sendall(b"ok\n")


if __name__ == "__main__":  # pragma: no cover
    main()
