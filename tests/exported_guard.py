"""Running an exported guard as a user without advguard would: a clean interpreter (Python's
isolated mode, any import of advguard refused), plain ``torch.jit.load``."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import torch
from torch import Tensor

RUNNER = """
import importlib.abc
import json
import sys


class RefuseAdvguard(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "advguard":
            raise ModuleNotFoundError(f"{name} is not installed here")
        return None


sys.meta_path.insert(0, RefuseAdvguard())
import torch

guard_file, images_file, batch_size, out_file = sys.argv[1:]
extra = {"guard.json": ""}
guard = torch.jit.load(guard_file, _extra_files=extra)
images = torch.load(images_file, weights_only=True)
size = int(batch_size)
with torch.no_grad():
    try:
        guard(images[:1])
        refused = ""
    except Exception as error:  # torch.jit.Error: its features need input gradients
        refused = str(error)
    with torch.enable_grad():  # what serving code under no_grad does
        answers = [guard(images[k : k + size]) for k in range(0, len(images), size)]
outputs = {name: torch.cat([a[name] for a in answers]) for name in answers[0]}
torch.save(outputs, out_file)
loaded = sorted(name for name in sys.modules if name.split(".")[0] == "advguard")
report = {"metadata": json.loads(extra["guard.json"]), "advguard_modules": loaded}
print(json.dumps({**report, "refused_under_no_grad": refused}))
"""


def run_without_advguard(
    guard_file: Path, images: Tensor, batch_size: int, work: Path
) -> tuple[dict[str, Tensor], dict[str, object]]:
    """The exported guard's outputs for ``images`` in batches of ``batch_size``, and the
    metadata the file carries."""
    work.mkdir(parents=True, exist_ok=True)
    script, images_file, out_file = work / "run.py", work / "images.pt", work / "out.pt"
    script.write_text(RUNNER)
    torch.save(images, images_file)
    arguments = [str(guard_file), str(images_file), str(batch_size), str(out_file)]
    result = subprocess.run(
        [sys.executable, "-I", str(script), *arguments],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["advguard_modules"] == []
    assert "call it with autograd on" in report["refused_under_no_grad"]
    return torch.load(out_file, weights_only=True), report["metadata"]
