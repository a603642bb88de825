"""The core's imports point one way: data → models → attacks → defenses → detection →
evaluation → guard, and nothing in it imports the service, the jobs or the terminal."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "backend" / "advguard"
LAYERS = ["data", "models", "attacks", "defenses", "detection", "evaluation", "guard"]
OUTSIDE_THE_CORE = {"api", "worker", "cli", "jobs", "storage"}
SERVICE_LIBRARIES = {"fastapi", "celery", "redis", "sqlalchemy", "starlette"}


def layer_of(path: Path) -> str:
    return path.relative_to(PACKAGE).parts[0].removesuffix(".py")


def imported_modules(path: Path) -> list[tuple[int, str]]:
    """Every module ``path`` imports, at any depth of its code (line, dotted name)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
    return found


CORE_FILES = sorted(
    path
    for path in PACKAGE.rglob("*.py")
    if layer_of(path) in LAYERS and "__pycache__" not in path.parts
)


def test_the_layers_cover_the_core():
    assert {layer_of(path) for path in CORE_FILES} == set(LAYERS)


@pytest.mark.parametrize("path", CORE_FILES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_core_modules_import_only_below_themselves(path):
    own = LAYERS.index(layer_of(path))
    wrong = []
    for line, module in imported_modules(path):
        parts = module.split(".")
        if parts[0] in SERVICE_LIBRARIES:
            wrong.append(f"line {line}: {module} (a service library)")
        if parts[0] != "advguard" or len(parts) < 2:
            continue
        if parts[1] in OUTSIDE_THE_CORE:
            wrong.append(f"line {line}: {module} (outside the core)")
        elif parts[1] in LAYERS and LAYERS.index(parts[1]) > own:
            wrong.append(f"line {line}: {module} (above {layer_of(path)})")
    assert not wrong, wrong


def test_every_job_type_is_declared_once_in_the_registry():
    """The request union and the type names are the registry's, every type has a queue the
    worker listens on, and the API documents each type's parameters and result."""
    from typing import get_args

    from advguard.api.app import create_app
    from advguard.jobs import JOB_KINDS, JobParams, JobType
    from advguard.worker.app import QUEUES

    union = get_args(get_args(JobParams)[0])
    assert [kind.params for kind in JOB_KINDS.values()] == list(union)
    assert list(JOB_KINDS) == list(get_args(JobType))
    assert {kind.queue for kind in JOB_KINDS.values()} <= set(QUEUES)
    schemas = create_app().openapi()["components"]["schemas"]
    for kind in JOB_KINDS.values():
        title = "".join(part.title() for part in kind.type.split("_"))
        job = schemas[f"{title}Job"]["properties"]
        assert job["type"]["const"] == kind.type
        assert kind.result.__name__ in str(job["result"])


def test_the_job_steps_import_only_the_core():
    """What the CLI and the workers share runs without the storage or the service."""
    wrong = [
        f"line {line}: {module}"
        for line, module in imported_modules(PACKAGE / "jobs" / "steps.py")
        if module.split(".")[0] in SERVICE_LIBRARIES
        or (module.startswith("advguard.") and module.split(".")[1] not in LAYERS)
    ]
    assert not wrong, wrong
