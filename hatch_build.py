"""Wheel build hook: builds the canvas bundle from `designer/frontend`'s lock file and ships it.

The bundle is never committed; an editable install skips this (`make` builds the bundle then).
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

BUNDLE = "designer/frontend/dist/flowyard_canvas.js"


class CanvasBuildHook(BuildHookInterface):  # type: ignore[misc]
    PLUGIN_NAME = "custom"

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        if self.target_name != "wheel" or version == "editable":
            return
        frontend = Path(self.root) / "designer" / "frontend"
        if not (Path(self.root) / BUNDLE).exists():
            subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=frontend, check=True)
            subprocess.run(["npm", "run", "build"], cwd=frontend, check=True)
        build_data["artifacts"].append(BUNDLE)
