"""Build and run the ``page_copy_dma`` RTL under Icarus Verilog with cocotb.

One build directory per parameter set (the compiled design depends on the parameters); each
run passes its configuration to the cocotb test module through the ``HWEMU_DMA_CONFIG``
environment variable (JSON) and gets results back through a JSON file named in that
configuration. Simulator output goes to log files in the build directory, never to stdout.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import sys
from pathlib import Path

from hwemu.errors import HwemuError

TOPLEVEL = "page_copy_dma"
CONFIG_ENV = "HWEMU_DMA_CONFIG"
RTL_DIR_ENV = "HWEMU_RTL_DIR"

# Level of the cocotb runner's own log (it logs every command, and a reused build as a
# warning); the command line raises it to ERROR to keep stderr for progress and errors.
LOG_LEVEL = logging.INFO


def _runner():
    from cocotb_tools.runner import get_runner

    runner = get_runner("icarus")
    runner.log.setLevel(LOG_LEVEL)
    return runner


def rtl_dir() -> Path:
    """The directory holding the Verilog sources: ``$HWEMU_RTL_DIR`` if set, else the source
    tree's rtl/ (a checkout or an editable install), else ``<prefix>/share/hwemu/rtl`` where a
    wheel installs them."""
    env = os.environ.get(RTL_DIR_ENV)
    if env:
        d = Path(env)
    else:
        d = Path(__file__).resolve().parents[2] / "rtl"
        if not (d / f"{TOPLEVEL}.v").is_file():
            d = Path(sys.prefix) / "share" / "hwemu" / "rtl"
    if not (d / f"{TOPLEVEL}.v").is_file():
        raise HwemuError(f"{d / (TOPLEVEL + '.v')}: RTL source not found "
                         f"(run from a source checkout or set {RTL_DIR_ENV})")
    return d


def rtl_sources() -> list[Path]:
    return sorted(rtl_dir().glob("*.v"))


def check_simulator() -> None:
    """Raise HwemuError unless Icarus Verilog and cocotb are available."""
    if shutil.which("iverilog") is None or shutil.which("vvp") is None:
        raise HwemuError("iverilog: Icarus Verilog not found on PATH "
                         "(install it, e.g. 'apt-get install iverilog')")
    try:
        import cocotb  # noqa: F401
        import cocotb_tools.runner  # noqa: F401
    except ImportError:
        raise HwemuError("cocotb is not installed; install the RTL extra: "
                         "pip install 'hwemu[rtl]'") from None


def param_key(params: dict) -> str:
    """A directory name for one parameter set."""
    return "_".join(f"{k.lower()}{v}" for k, v in sorted(params.items()))


def build(params: dict, build_dir: Path) -> None:
    """Compile the RTL with ``params`` into ``build_dir`` (reused if up to date)."""
    build_dir = Path(build_dir)
    build_dir.mkdir(parents=True, exist_ok=True)
    runner = _runner()
    try:
        runner.build(
            sources=rtl_sources(),
            hdl_toplevel=TOPLEVEL,
            parameters=params,
            build_dir=build_dir,
            timescale=("1ns", "1ps"),
            log_file=build_dir / "build.log",
        )
    except SystemExit as exc:  # the runner exits on a failed compile
        raise RuntimeError(f"iverilog build failed, see {build_dir / 'build.log'}") from exc


def run(test_module: str, params: dict, build_dir: Path, config: dict,
        testcase: str | None = None, seed: int = 1,
        extra_path: Path | None = None) -> tuple[int, int]:
    """Run cocotb ``test_module`` on an existing build; return (tests, failures).

    ``extra_path`` is a directory to put on the simulator's Python path (for test modules that
    are not part of the hwemu package).
    """
    from cocotb_tools.check_results import get_results

    build_dir = Path(build_dir)
    name = testcase or test_module
    test_dir = build_dir / f"run_{name}"
    test_dir.mkdir(parents=True, exist_ok=True)
    if extra_path is not None and str(extra_path) not in sys.path:
        sys.path.insert(0, str(extra_path))
    runner = _runner()
    results = test_dir / "results.xml"
    if results.exists():
        results.unlink()
    try:
        runner.test(
            test_module=test_module,
            hdl_toplevel=TOPLEVEL,
            hdl_toplevel_lang="verilog",
            testcase=testcase,
            seed=seed,
            build_dir=build_dir,
            test_dir=test_dir,
            results_xml=str(results),
            extra_env={CONFIG_ENV: json.dumps(config)},
            log_file=test_dir / "sim.log",
            timescale=("1ns", "1ps"),
        )
    except SystemExit as exc:  # the runner exits when a test fails or the simulator dies
        if not results.is_file():
            raise RuntimeError(f"simulation failed, see {test_dir / 'sim.log'}") from exc
    return get_results(results)


def load_config() -> dict:
    """Inside a simulation: the configuration passed by :func:`run`."""
    return json.loads(os.environ.get(CONFIG_ENV, "{}"))
