"""Structured logs (one JSON object a line) with phone numbers masked. Message bodies are never logged."""

from __future__ import annotations

import atexit
import json
import logging
import os
import re
import sys
import threading
import time
from datetime import UTC, datetime

_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}
_PHONE = re.compile(r"\+?\d[\d\s().-]{6,}\d")
_ADDRESS = re.compile(r"\d{1,3}(?:\.\d{1,3}){3}")  # an IPv4 address is no phone number: the URL stays readable
_COLOUR = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")  # terminal colour codes (werkzeug's banner) mean nothing in JSON


def _mask_phones(text: str) -> str:
    return _PHONE.sub(lambda m: m.group() if _ADDRESS.fullmatch(m.group()) else mask_phone(m.group()), text)


def mask_phone(phone: str | None) -> str:
    """Keep the last two digits only: enough to tell two callers apart in a log, not to call them."""
    if not phone:
        return ""
    digits = re.sub(r"\D", "", phone)
    return f"…{digits[-2:]}" if len(digits) > 2 else "…"


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        data = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            # Phone numbers that slip into a message are masked here as a last line of defence.
            "msg": _mask_phones(_COLOUR.sub("", record.getMessage())),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                data[key] = value
        if record.exc_info:
            data["exc"] = self.formatException(record.exc_info)
        return json.dumps(data, ensure_ascii=False, default=str)


class BatchedHandler(logging.Handler):
    """Lines to a file descriptor, many per system call. In a busy threaded worker each write costs a
    hand-over of the interpreter lock besides the call itself: with a write per line, the one INFO line
    of each text took about a tenth of the webhook's CPU. INFO lines wait up to ``interval`` seconds; a
    WARNING or worse is written at once, with everything before it, so an escalation or an error is
    never held back."""

    def __init__(self, fd: int = 2, interval: float = 0.1) -> None:
        super().__init__()
        self.fd, self.interval = fd, interval
        self._lines: list[str] = []
        self._buffer = threading.Lock()
        self._writing = threading.Lock()
        self._thread: threading.Thread | None = None
        atexit.register(self.flush)
        os.register_at_fork(after_in_child=self._forked)

    def _forked(self) -> None:
        # The parent writes what it had; the child starts empty, with locks and a writer of its own.
        self._lines, self._thread = [], None
        self._buffer, self._writing = threading.Lock(), threading.Lock()

    def handle(self, record: logging.LogRecord) -> bool:
        # Without Handler.handle's lock around emit: the buffer has its own, held for an append.
        if not self.filter(record):
            return False
        self.emit(record)
        return True

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record) + "\n"
        except Exception:
            self.handleError(record)
            return
        with self._buffer:
            self._lines.append(line)
        if record.levelno >= logging.WARNING:
            self.flush()
        elif self._thread is None:
            self._start()

    def flush(self) -> None:
        with self._writing:
            with self._buffer:
                lines, self._lines = self._lines, []
            data = "".join(lines).encode("utf-8", "replace")
            while data:
                try:
                    data = data[os.write(self.fd, data):]
                except OSError:  # the stream is gone (shutdown): nothing else can be done with it
                    return

    def _start(self) -> None:
        with self._buffer:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="log-writer", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        while True:
            time.sleep(self.interval)
            self.flush()


def configure(level: str = "INFO") -> None:
    """JSON lines on stderr for the whole process (gunicorn, worker, CLI)."""
    root = logging.getLogger()
    if any(isinstance(h.formatter, JsonFormatter) for h in root.handlers):
        return
    try:
        handler: logging.Handler = BatchedHandler(sys.stderr.fileno())
    except (AttributeError, OSError, ValueError):  # stderr is not a file (a test runner's capture)
        handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root.addHandler(handler)
    root.setLevel(level.upper())
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)
    logging.getLogger("twilio.http_client").setLevel(logging.WARNING)  # it logs request bodies at INFO
