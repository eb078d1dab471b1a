"""Where the repo, the template, the SAM CLI and a Python 3.12 interpreter are."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from cfnlint.decode import decode_str

REPO_ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = REPO_ROOT / "template.yaml"


def stack_template() -> dict:
    """template.yaml as CloudFormation reads it (short-form tags such as !Ref become dicts)."""
    decoded, matches = decode_str(TEMPLATE.read_text())
    assert not matches, "template.yaml does not parse:\n" + "\n".join(str(m) for m in matches)
    return decoded


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


def translate(sam_cli: Path, template: Path) -> dict:
    """A template after the SAM transform (what CloudFormation deploys)."""
    script = Path(__file__).with_name("translate_template.py")
    proc = run([str(sam_cli.parent / "python"), str(script), str(template)], env=sam_env())
    assert proc.returncode == 0, describe(proc)
    return json.loads(proc.stdout)


def resolved(template: dict, **parameters: str) -> dict:
    """The template as CloudFormation would deploy it with these parameter values (the others at their
    defaults): resources whose condition is false dropped, `Fn::If` replaced by its branch, `AWS::NoValue`
    removed; a list parameter's `Ref` becomes its values. Other intrinsics (references to resources and to
    string parameters, `Fn::Sub`, ...) are left as they are."""
    values: dict[str, object] = {}
    for name, spec in template["Parameters"].items():
        value = parameters.get(name, spec.get("Default"))
        values[name] = value.split(",") if spec["Type"] == "CommaDelimitedList" else value
    conditions: dict[str, bool] = {}

    def evaluate(node: object) -> object:
        if not isinstance(node, dict) or len(node) != 1:
            return node
        ((key, arg),) = node.items()
        if key == "Ref":
            return values.get(arg, node)
        if key == "Condition":
            return condition(arg)
        if key == "Fn::Equals":
            return evaluate(arg[0]) == evaluate(arg[1])
        if key == "Fn::Not":
            return not evaluate(arg[0])
        if key == "Fn::And":
            return all(evaluate(a) for a in arg)
        if key == "Fn::Or":
            return any(evaluate(a) for a in arg)
        if key == "Fn::Join" and isinstance(evaluate(arg[1]), list):
            return arg[0].join(evaluate(arg[1]))
        return node

    def condition(name: str) -> bool:
        if name not in conditions:
            conditions[name] = bool(evaluate(template["Conditions"][name]))
        return conditions[name]

    no_value = object()

    def walk(node: object) -> object:
        if isinstance(node, dict):
            if set(node) == {"Fn::If"}:
                name, when_true, when_false = node["Fn::If"]
                return walk(when_true if condition(name) else when_false)
            if node == {"Ref": "AWS::NoValue"}:
                return no_value
            if set(node) == {"Ref"} and isinstance(values.get(node["Ref"]), list):
                return values[node["Ref"]]
            walked = {key: walk(value) for key, value in node.items()}
            return {key: value for key, value in walked.items() if value is not no_value}
        if isinstance(node, list):
            return [item for item in map(walk, node) if item is not no_value]
        return node

    resources = {
        name: resource
        for name, resource in template["Resources"].items()
        if "Condition" not in resource or condition(resource["Condition"])
    }
    return walk({**template, "Resources": resources})  # type: ignore[return-value]
