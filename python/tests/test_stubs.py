"""The stubs (`_native.pyi`) type what the extension has, and nothing it
lacks (mypy's `stubtest` against the installed module); the example and
the benchmark type-check against them; every public name is exported and
documented."""

import subprocess
import sys
from pathlib import Path

import cassandra_commitlog as cl

HERE = Path(__file__).resolve().parent


def run_mypy(args, cwd):
    p = subprocess.run([sys.executable, "-m", *args], cwd=cwd, capture_output=True, text=True)
    assert p.returncode == 0, p.stdout + p.stderr


def test_stubs_match_the_extension(tmp_path):
    # Outside the source tree: the package is the installed one.
    run_mypy(["mypy.stubtest", "cassandra_commitlog"], tmp_path)


def test_the_example_and_the_benchmark_type_check(tmp_path):
    files = [str(HERE.parent / "examples" / "search_sync.py"), str(HERE.parent / "bench" / "bench_changes.py")]
    run_mypy(["mypy", "--ignore-missing-imports", "--cache-dir", str(tmp_path / "cache"), *files], tmp_path)


def test_the_package_exports_and_documents_every_public_name():
    from cassandra_commitlog import _native

    assert set(_native.__all__) <= set(cl.__all__)
    for name in cl.__all__:
        obj = getattr(cl, name)
        assert (obj.__doc__ or "").strip(), name
