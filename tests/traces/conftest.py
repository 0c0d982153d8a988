"""Shared helpers for the trace pipeline tests."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from hwemu.cli import main


@pytest.fixture
def run_cli(capsys):
    """Run ``hwemu ARGS``; return (exit status, stdout, stderr)."""

    def run(*argv):
        status = main([str(a) for a in argv])
        out, err = capsys.readouterr()
        return status, out, err

    return run


@pytest.fixture(scope="session")
def tool_cache(tmp_path_factory):
    """A private HWEMU_CACHE shared by the recording tests (the tool is built once)."""
    return tmp_path_factory.mktemp("hwemu-cache")


@pytest.fixture(scope="session")
def compile_c():
    """compile_c(source_text, out_path, *gcc_flags) -> path of the built program."""
    if shutil.which("gcc") is None:
        pytest.skip("gcc not installed")

    def build(src: str, out, *flags) -> str:
        c = out.with_suffix(".c")
        c.write_text(src)
        subprocess.run(["gcc", "-O1", "-o", str(out), str(c), *flags], check=True)
        return str(out)

    return build
