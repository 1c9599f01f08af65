"""Structured logs (one JSON object a line) with phone numbers masked. Message bodies are never logged."""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime

_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}
_PHONE = re.compile(r"\+?\d[\d\s().-]{6,}\d")


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
            "msg": _PHONE.sub(lambda m: mask_phone(m.group()), record.getMessage()),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                data[key] = value
        if record.exc_info:
            data["exc"] = self.formatException(record.exc_info)
        return json.dumps(data, ensure_ascii=False, default=str)


def configure(level: str = "INFO") -> None:
    """JSON lines on stderr for the whole process (gunicorn, worker, CLI)."""
    root = logging.getLogger()
    if any(isinstance(h.formatter, JsonFormatter) for h in root.handlers):
        return
    # Our lines carry neither the caller's file and line nor thread and process names: not looking
    # them up for every record is the logging HOWTO's own optimisation.
    logging._srcfile = None
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root.addHandler(handler)
    root.setLevel(level.upper())
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)
    logging.getLogger("twilio.http_client").setLevel(logging.WARNING)  # it logs request bodies at INFO
