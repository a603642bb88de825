"""The Celery application: Redis as broker and result backend, one queue per kind of work.

Queues: ``attacks`` (adversarial-set chunks), ``training`` (classifier and detector
training), ``evaluation`` (reports). A worker serves the queues it is started with, so
more workers can be added per queue on other machines (``advguard worker -Q attacks``).
"""

from __future__ import annotations

from celery import Celery

from advguard.config import Settings, get_settings
from advguard.worker import QUEUES

__all__ = ["QUEUES", "celery_app", "create_celery"]


def create_celery(settings: Settings) -> Celery:
    """A Celery app configured from the settings."""
    app = Celery(
        "advguard",
        broker=settings.broker_url,
        backend=settings.broker_url,
        include=["advguard.worker.tasks"],
    )
    app.conf.update(
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        # A job is acknowledged only when it ends; if its worker process dies, the message
        # goes back to the queue and another worker re-runs it (bounded by job_max_attempts).
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_soft_time_limit=settings.job_soft_time_limit_s,
        task_time_limit=settings.job_soft_time_limit_s + 300,
        task_default_queue="training",
        # A message whose worker vanished (killed with its pool) is re-queued once it has
        # been unacknowledged for the visibility timeout; workers look for such messages
        # every few seconds (kombu's default is every 100 s).
        broker_transport_options={
            "visibility_timeout": settings.visibility_timeout_s,
            "unacked_restore_interval": 5,
            "unacked_restore_throttle": 1,
        },
        result_backend_transport_options={"visibility_timeout": settings.visibility_timeout_s},
        result_expires=7 * 24 * 3600,
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
    )
    return app


celery_app = create_celery(get_settings())
