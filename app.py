"""WSGI entry point: ``gunicorn app:app``."""

from assistant import create_app

app = create_app()
