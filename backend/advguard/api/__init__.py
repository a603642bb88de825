"""The HTTP API (FastAPI): ``create_app`` builds it; ``/docs`` documents it."""

from advguard.api.app import create_app

__all__ = ["create_app"]
