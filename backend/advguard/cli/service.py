"""``advguard serve``, ``worker`` and ``up``: the service's processes."""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys

from advguard.cli.common import (
    CommandError,
    Subcommands,
    add_server_options,
    parse_list,
)
from advguard.config import get_settings
from advguard.worker import QUEUES


def command_serve(args: argparse.Namespace) -> None:
    """Run the API (and the built web app) with uvicorn."""
    import uvicorn

    from advguard.api import create_app

    uvicorn.run(create_app(), host=args.host, port=args.port, log_level="info")


def command_worker(args: argparse.Namespace) -> None:
    """Run a Celery worker for the given queues (replaces this process)."""
    from advguard.service import worker_command

    command = worker_command(tuple(args.queues), args.concurrency, args.hostname)
    os.execv(command[0], command)


def command_up(args: argparse.Namespace) -> None:
    """Redis (started here if none answers), one worker and the API, on one machine."""
    from advguard.service import local_redis_port, redis_answers, start_redis

    settings = get_settings()
    children: list[subprocess.Popen[bytes]] = []
    # uvicorn re-raises the SIGTERM it caught once it has shut down; make that an exit that
    # runs the clean-up below instead of killing this process with the children still up.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    try:
        if not redis_answers(settings.broker_url):
            port = local_redis_port(settings.broker_url)
            if port is None:
                raise CommandError(f"the broker {settings.broker_url} does not answer")
            children.append(start_redis(port, settings.data_dir / "redis"))
            print(f"redis: started on 127.0.0.1:{port} (data in {settings.data_dir / 'redis'})")
        else:
            print(f"redis: using {settings.broker_url}")
        # Through the CLI so the worker gets jemalloc like every other heavy command.
        children.append(subprocess.Popen([sys.executable, "-m", "advguard.cli", "worker"]))
        print(f"worker: started (queues {', '.join(QUEUES)})")
        print(f"api: http://{args.host}:{args.port}/  (API docs at /docs)")
        command_serve(args)
    finally:
        for child in reversed(children):
            child.terminate()
        for child in children:
            child.wait(timeout=30)


def add_serve(commands: Subcommands) -> None:
    """``serve``."""
    serve = commands.add_parser("serve", help="run the HTTP API (needs Redis and a worker)")
    add_server_options(serve)
    serve.set_defaults(handler=command_serve)


def add_worker(commands: Subcommands) -> None:
    """``worker``."""
    worker = commands.add_parser("worker", help="run a Celery worker for the job queues")
    worker.add_argument(
        "-Q", "--queues", type=parse_list, default=list(QUEUES), help="comma-separated queues"
    )
    worker.add_argument("--concurrency", type=int, default=1, help="jobs run at once")
    worker.add_argument("--hostname", default=None, help="worker name (default: celery@host)")
    worker.set_defaults(handler=command_worker)


def add_up(commands: Subcommands) -> None:
    """``up``."""
    up = commands.add_parser(
        "up", help="the whole service on this machine: Redis, a worker and the API"
    )
    add_server_options(up)
    up.set_defaults(handler=command_up)
