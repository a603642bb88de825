"""The allocator's kept pages: jemalloc as the CLI and workers run it keeps what is freed;
``release_freed_memory`` hands it back, and ``ResidentCeiling`` does so once a loop has
grown past its allowance, not before."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from advguard.runtime import JEMALLOC_CONF, find_jemalloc

PROBE = """
import json
import sys
import torch
from advguard.runtime import ResidentCeiling, release_freed_memory, resident_bytes

MB = 1 << 20


def grow_and_free():
    blocks = [torch.ones((4 + 4 * (k % 3)) * MB) for k in range(12)]  # 16-48 MB, touched
    del blocks


start = resident_bytes()
grow_and_free()
kept = resident_bytes() - start
released = release_freed_memory()
after_release = resident_bytes() - start

ceiling = {}
for allowance in (1 << 40, 64 * MB):
    watched = ResidentCeiling(allowance)
    grow_and_free()
    ceiling[allowance] = resident_bytes() - watched.start
    watched.check()
    ceiling[allowance] = (ceiling[allowance], resident_bytes() - watched.start)
    release_freed_memory()
print(json.dumps({"kept": kept, "released": released, "after_release": after_release,
                  "ceiling": list(ceiling.values())}))
"""


@pytest.mark.skipif(find_jemalloc() is None, reason="libjemalloc2 is not installed")
def test_kept_pages_are_released_past_the_ceiling_only() -> None:
    env = {**os.environ, "LD_PRELOAD": str(find_jemalloc()), "MALLOC_CONF": JEMALLOC_CONF}
    result = subprocess.run(
        [sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr[-2000:]
    measured = json.loads(result.stdout.strip().splitlines()[-1])
    # jemalloc kept most of the ~380 MB freed, and gave it back when asked.
    assert measured["kept"] > 300 << 20, measured
    assert measured["released"] is True
    assert measured["after_release"] < 32 << 20, measured
    (far_before, far_after), (near_before, near_after) = measured["ceiling"]
    # Under a ceiling far above, the check leaves the kept pages alone (no cost) ...
    assert far_before > 300 << 20 and far_after > 300 << 20, measured
    # ... past a 64 MB one, it releases them.
    assert near_before > 300 << 20 and near_after < 32 << 20, measured
