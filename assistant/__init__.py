"""Caregiver Assistant: answers caregivers' texts from a clinic's reviewed content, in their language."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import Any

from flask import Flask

from .catalog import CatalogStore, load_catalog
from .config import ENVIRONMENTS, MAX_REQUEST_BYTES, Settings, production_problems, proxy_hops
from .conversation import Assistant

log = logging.getLogger(__name__)

# Flask settings read from the environment (the README documents each one).
ENV_SETTINGS = ("TWILIO_AUTH_TOKEN", "TWILIO_ACCOUNT_SID", "TWILIO_FROM_NUMBER", "TWILIO_MESSAGING_SERVICE_SID",
                "TWILIO_API_BASE_URL", "PUBLIC_BASE_URL", "DATABASE_URL", "ALERT_NUMBERS", "ALERT_BACKUP_NUMBERS",
                "ASSISTANT_ENV", "LOG_LEVEL", "SPOOL_PATH", "SECRET_KEY", "REDIS_URL", "MESSAGE_RETENTION_DAYS",
                "VOICE_RECORDINGS_DIR", "PROXY_HOPS")


class ConfigurationError(RuntimeError):
    """A setting production cannot run without."""


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """Application factory: settings from the environment, overridden by ``config``."""
    app = Flask(__name__, instance_relative_config=True)
    overrides = dict(config or {})
    env = {**os.environ, **{k: str(v) for k, v in overrides.items() if isinstance(v, str | int | float | bool)}}
    settings = Settings.from_env(env)
    app.config.from_mapping(
        {key: os.environ.get(key, "") for key in ENV_SETTINGS},
        DATABASE_URL=os.environ.get("DATABASE_URL") or f"sqlite:///{os.path.join(app.instance_path, 'assistant.db')}",
        ASSISTANT_ENV=os.environ.get("ASSISTANT_ENV") or "development",
        LOG_LEVEL=os.environ.get("LOG_LEVEL") or "INFO",
    )
    app.config.update(overrides)
    app.config["SETTINGS"] = settings
    if app.config.get("MAX_CONTENT_LENGTH") is None:  # Flask's default is None: no limit
        app.config["MAX_CONTENT_LENGTH"] = MAX_REQUEST_BYTES
    if app.config["ASSISTANT_ENV"] not in ENVIRONMENTS:
        raise ConfigurationError(f"ASSISTANT_ENV must be one of {', '.join(ENVIRONMENTS)} exactly, "
                                 f"not {app.config['ASSISTANT_ENV']!r}")
    production = app.config["ASSISTANT_ENV"] == "production"
    app.config.setdefault("SIMULATOR", not production)
    try:
        app.config["PROXY_HOPS"] = hops = proxy_hops(app.config.get("PROXY_HOPS"))
    except ValueError as exc:
        raise ConfigurationError(str(exc)) from None
    if hops:
        from werkzeug.middleware.proxy_fix import ProxyFix

        # Only the client's address, from the hops-th X-Forwarded-For entry from the right (the one the nearest
        # trusted proxy wrote); what a client puts in the header itself stays to the left and is not read.
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=0, x_host=0, x_port=0, x_prefix=0)

    from . import logs

    logs.configure(app.config["LOG_LEVEL"])
    if production:
        errors, warnings = production_problems(app.config, settings)
        for warning in warnings:
            log.warning("setting: %s", warning, extra={"event": "config.warning"})
        if errors:
            raise ConfigurationError("production cannot start: " + "; ".join(errors))

    catalog = load_catalog(settings.messages_dir, settings.locales_dir,
                           serve_unreviewed=settings.serve_unreviewed)
    app.extensions["assistant"] = Assistant(CatalogStore(catalog), settings)

    from . import accounts, admin, alerts, cli, db, inbox, simulator, sms, voice, web

    db.init_app(app)
    from . import revisions

    revisions.init_app(app)  # serve the live catalog revision, and follow it
    inbox.init_app(app)
    alerts.init_app(app)
    accounts.init_app(app)
    admin.init_app(app)
    cli.init_app(app)
    app.register_blueprint(sms.bp)
    app.register_blueprint(voice.bp)
    app.register_blueprint(web.bp)
    app.register_blueprint(simulator.bp)
    return app

