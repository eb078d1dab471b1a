"""`sam build` of the whole stack (about 25 s here): the layer gets Lambda-compatible wheels."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from importlib.metadata import PathDistribution
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from .support import REPO_ROOT, TEMPLATE, describe, python312_dir, run, sam_env

FUNCTIONS = ["IngestEventsFunction", "RecomputeScoresFunction", "AssembleFeedFunction", "MigrateSchemaFunction"]
# Lambda's quota for a function and all its layers, unzipped.
LAMBDA_UNZIPPED_LIMIT_BYTES = 250 * 1024 * 1024


@pytest.fixture(scope="module")
def build_dir(sam_cli, tmp_path_factory) -> Iterator[Path]:
    assert python312_dir() is not None, "sam build needs a Python 3.12 interpreter (pyenv install 3.12)"
    tmp = tmp_path_factory.mktemp("sam")
    # A fresh build outside the repo: no stale cache hides a broken requirements.txt, no .aws-sam left.
    proc = run(
        [
            str(sam_cli),
            "build",
            "--template-file",
            str(TEMPLATE),
            "--build-dir",
            str(tmp / "build"),
            "--cache-dir",
            str(tmp / "cache"),
            "--no-cached",
        ],
        timeout=600,
        env=sam_env(),
    )
    assert proc.returncode == 0, describe(proc)
    # The bytecode `make build` adds (~13 MB), so that the size checked is the size deployed.
    python312 = python312_dir() / "python3.12"
    proc = run(
        [
            str(python312),
            "-m",
            "compileall",
            "-q",
            "-j",
            "0",
            "--invalidation-mode",
            "unchecked-hash",
            str(tmp / "build"),
        ]
    )
    assert proc.returncode == 0, describe(proc)
    yield tmp / "build"
    shutil.rmtree(tmp, ignore_errors=True)  # ~60 MB of wheels; pytest would keep three runs of them


def test_layer_holds_feedcore_and_its_dependencies(build_dir):
    python = build_dir / "FeedCoreLayer" / "python"
    assert (python / "feedcore" / "__init__.py").is_file()
    # The migrations travel in the layer (feedcore/migrations links to infra/migrations) as real files.
    packaged = python / "feedcore" / "migrations"
    assert not packaged.is_symlink()
    assert sorted(p.name for p in packaged.glob("*.sql")) == sorted(
        p.name for p in (REPO_ROOT / "infra" / "migrations").glob("*.sql")
    )
    assert (python / "psycopg").is_dir()
    # The binary wheels must be the Linux x86_64 / CPython 3.12 builds that Lambda can load.
    assert list((python / "psycopg_binary").glob("*.so"))
    assert list((python / "pydantic_core").glob("*cpython-312-x86_64-linux-gnu.so"))


def test_the_layers_botocore_comes_with_the_boto3_released_for_it(build_dir):
    """aws-xray-sdk brings botocore into the layer, and /opt/python comes before the runtime's packages: without its
    own boto3, the layer would pair the runtime's boto3 with whatever botocore was newest at build time."""
    python = build_dir / "FeedCoreLayer" / "python"
    (botocore,) = [PathDistribution(path) for path in python.glob("botocore-*.dist-info")]
    (boto3,) = [PathDistribution(path) for path in python.glob("boto3-*.dist-info")]
    (wanted,) = [r for r in map(Requirement, boto3.requires or []) if r.name == "botocore" and not r.marker]
    assert botocore.version in wanted.specifier, (boto3.version, botocore.version)


@pytest.mark.parametrize("name", FUNCTIONS)
def test_function_artifact_has_its_handler(build_dir, name):
    assert (build_dir / name / "app.py").is_file()


def test_the_layer_reads_parquet_and_each_function_with_it_fits_lambdas_unzipped_quota(build_dir):
    def size(folder: Path) -> int:
        return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())

    assert list((build_dir / "FeedCoreLayer" / "python" / "pyarrow").glob("_parquet.cpython-312-x86_64-linux-gnu.so"))
    # Measured as deployed: with the bytecode of every module.
    assert list((build_dir / "FeedCoreLayer" / "python" / "botocore" / "__pycache__").glob("*.cpython-312.pyc"))
    layer = size(build_dir / "FeedCoreLayer")
    for name in FUNCTIONS:
        assert layer + size(build_dir / name) < LAMBDA_UNZIPPED_LIMIT_BYTES, name  # pyarrow is most of it
