"""Caregiver Assistant: answers caregivers' texts from a clinic's reviewed content, in their language."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from flask import Flask

from .catalog import CatalogStore, load_catalog
from .config import Settings
from .conversation import Assistant


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """Application factory: settings from the environment, overridden by ``config``."""
    app = Flask(__name__, instance_relative_config=True)
    overrides = dict(config or {})
    env = {**os.environ, **{k: str(v) for k, v in overrides.items() if isinstance(v, str | int | float | bool)}}
    settings = Settings.from_env(env)
    app.config.from_mapping(SETTINGS=settings)
    app.config.update(overrides)
    catalog = load_catalog(settings.messages_dir, settings.locales_dir,
                           serve_unreviewed=settings.serve_unreviewed)
    app.extensions["assistant"] = Assistant(CatalogStore(catalog), settings)

    from . import cli

    cli.init_app(app)
    return app


def get_assistant(app: Flask) -> Assistant:
    return app.extensions["assistant"]
