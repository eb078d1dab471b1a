"""Where the repo, the template, the SAM CLI and a Python 3.12 interpreter are."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = REPO_ROOT / "template.yaml"


def require_sam_cli() -> Path:
    """The SAM CLI from $SAM_CLI or .tools; a missing one fails the test, it never skips it."""
    sam = Path(os.environ.get("SAM_CLI") or REPO_ROOT / ".tools" / "bin" / "sam")
    if not sam.is_file():
        pytest.fail(f"SAM CLI not found at {sam}: run `make tools` (or set SAM_CLI to a sam binary)")
    return sam


def python312_dir() -> Path | None:
    """The bin dir of a real Python 3.12 (what Lambda runs), which `sam build` looks up on PATH."""
    try:
        root = subprocess.run(["pyenv", "root"], capture_output=True, text=True, check=True, timeout=30).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        root = ""
    if root:
        found = sorted(
            Path(root, "versions").glob("3.12*/bin/python3.12"),
            key=lambda p: [int(n) for n in re.findall(r"\d+", p.parents[1].name)],
        )
        if found:
            return found[-1].parent
    # A pyenv shim named python3.12 exists even when 3.12 is not the selected version, and then fails.
    which = shutil.which("python3.12")
    if which and "/shims/" not in which:
        return Path(which).parent
    return None


def sam_env() -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    env["SAM_CLI_TELEMETRY"] = "0"
    py312 = python312_dir()
    if py312 is not None:
        env["PATH"] = f"{py312}{os.pathsep}{env.get('PATH', '')}"
    return env


def run(cmd: list[str], timeout: float = 300, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=REPO_ROOT, capture_output=True, text=True, timeout=timeout, **kwargs)


def describe(proc: subprocess.CompletedProcess) -> str:
    return f"exit {proc.returncode}\n--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}"
