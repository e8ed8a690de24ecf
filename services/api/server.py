"""The application as `retention serve` runs it in each server process: logs configured first
(every uvicorn worker process is a fresh interpreter), then the app."""

from fastapi import FastAPI

from services.api.app import create_app
from services.core.config import get_settings
from services.core.logs import configure_logging


def create_served_app() -> FastAPI:
    settings = get_settings()
    configure_logging(settings.log_level)
    return create_app(settings)
