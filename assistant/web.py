"""Health check for the platform."""

from __future__ import annotations

import threading

from flask import Blueprint, current_app, jsonify

bp = Blueprint("web", __name__)


HEALTH_TIMEOUT = 1.5  # seconds: a stalled database is reported (503) well within a platform's check


@bp.get("/healthz")
def healthz():
    # In a thread of its own: a connection to a server that never answers cannot be cut before
    # libpq's connect_timeout, and the check must answer before that.
    recorder = current_app.extensions["recorder"]
    result: list[str] = []

    def ping() -> None:
        try:
            recorder.ping(HEALTH_TIMEOUT)
            result.append("ok")
        except Exception:
            result.append("unavailable")

    checker = threading.Thread(target=ping, name="healthz", daemon=True)
    checker.start()
    checker.join(HEALTH_TIMEOUT)
    database = result[0] if result else "unavailable"
    catalog = current_app.extensions["assistant"].store.current
    body = {"status": "ok" if database == "ok" else "degraded", "database": database,
            "languages": len(catalog.languages), "catalog_errors": len(catalog.errors)}
    return jsonify(body), 200 if database == "ok" else 503
