"""``trials`` never imports ray (docs/design.md §2: dependency direction; one lineage runs with no Ray).

Checked in a fresh interpreter: every module of the package, ``trials.optimizers`` and
``trials.lineage`` among them, leaves ``ray`` out of ``sys.modules``.
"""

from __future__ import annotations

import json
import pkgutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _loaded_after(imports: str, watched: tuple[str, ...]) -> list[str]:
    """Which of ``watched`` are in ``sys.modules`` after ``imports`` in a fresh interpreter."""
    code = f"import sys, json\n{imports}\nprint(json.dumps(sorted(m for m in {watched!r} if m in sys.modules)))"
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def trials_modules() -> list[str]:
    names = []
    for info in pkgutil.walk_packages([str(ROOT / "trials")], prefix="trials."):
        if not info.name.endswith("__main__"):
            names.append(info.name)
    return sorted(names)


def test_every_trials_module_imports_without_ray():
    modules = trials_modules()
    assert {"trials.optimizers", "trials.lineage", "trials.optimizers.registry"} <= set(modules)
    imports = "import trials\n" + "\n".join(f"import {m}" for m in modules)
    assert _loaded_after(imports, ("ray",)) == []


def test_the_check_sees_ray_when_it_is_imported():
    # The same check reports ray when something does import it, so the empty answer means something.
    assert _loaded_after("import ray", ("ray",)) == ["ray"]
