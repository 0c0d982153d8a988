"""Where a report came from: the hwemu version, the command, the date (UTC), the machines'
parameters (each dumped to ``DIR/machines/<name>.toml``) and the seeds.

``compare`` and ``sweep`` make one :class:`Provenance` when they start; every cell file they
write (``cell.json``'s ``provenance``) and the report (the end of ``report.html`` and
``results.md``) carry it. results.csv does not: its bytes depend on the cells only.

The date is the time the run started, unless ``SOURCE_DATE_EPOCH`` (the reproducible-builds
convention: seconds since 1970, UTC) is set; with it, the same cells and the same command give
the same report bytes.
"""

from __future__ import annotations

import os
import re
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path

#: The subdirectory of the report directory that holds the dumped machine descriptions.
MACHINES_DIR = "machines"


def _date_utc() -> str:
    from datetime import datetime, timezone

    epoch = os.environ.get("SOURCE_DATE_EPOCH", "").strip()
    if epoch:
        try:
            when = datetime.fromtimestamp(int(epoch), timezone.utc)
        except (ValueError, OverflowError, OSError):
            from hwemu.errors import HwemuError

            raise HwemuError(f"SOURCE_DATE_EPOCH={epoch!r}: expected whole seconds since "
                             "1970-01-01 UTC") from None
    else:
        when = datetime.now(timezone.utc)
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def hwemu_version() -> str:
    """``hwemu.__version__``. Read from the package object, which is always loaded before any
    of its modules: importing it by name would import the whole top level (hwemu.api, a layer
    above this one)."""
    return sys.modules["hwemu"].__version__


def python_command(api: str) -> str:
    """The command of a run started from Python: the process's argv and the API call."""
    argv = [Path(sys.argv[0]).name if sys.argv and sys.argv[0] else "python"] + sys.argv[1:]
    return f"{shlex.join(argv)} (Python: {api})"


@dataclass(frozen=True)
class Provenance:
    """The run's identity; ``machine_files`` maps a cell's machine (as given) to its dumped
    TOML, relative to the report directory (missing if it could not be loaded)."""

    version: str
    command: str
    date_utc: str
    seeds: tuple = ()
    machine_files: tuple = ()        # ((machine, "machines/x.toml"), ...)

    @classmethod
    def now(cls, command: str | None = None, seeds=(), machine_files=()) -> "Provenance":
        return cls(hwemu_version(), command or python_command("hwemu.compare"), _date_utc(),
                   tuple(sorted({int(s) for s in seeds})), tuple(machine_files))

    def with_machine_files(self, machine_files) -> "Provenance":
        from dataclasses import replace

        return replace(self, machine_files=tuple(machine_files))

    def machine_file(self, machine: str) -> str | None:
        return dict(self.machine_files).get(machine)

    def for_cell(self, machine: str, seed: int) -> dict:
        """``cell.json``'s ``provenance``."""
        return {"hwemu_version": self.version, "command": self.command,
                "date_utc": self.date_utc, "seed": int(seed),
                "machine_file": self.machine_file(machine)}

    def to_dict(self) -> dict:
        return {"hwemu_version": self.version, "command": self.command,
                "date_utc": self.date_utc, "seeds": list(self.seeds),
                "machine_files": dict(self.machine_files)}

    @classmethod
    def from_dict(cls, d: dict) -> "Provenance":
        return cls(d["hwemu_version"], d["command"], d["date_utc"], tuple(d.get("seeds", ())),
                   tuple(sorted((d.get("machine_files") or {}).items())))


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_") or "machine"


def write_machine_files(out: str | Path, machines, base_dir: str | Path | None = None) -> tuple:
    """Dump each machine (a preset name or a TOML file, relative to ``base_dir`` if given) to
    ``out/machines/<name>.toml``, every key with its value (``hwemu machine dump``). Returns
    ``((machine, relative path), ...)``; a machine that cannot be loaded is left out (the cell
    that uses it fails with the loader's message)."""
    from hwemu.errors import HwemuError
    from hwemu.fileio import atomic_write
    from hwemu.machine.config import dump_toml, load_machine, machine_dict

    out = Path(out)
    files: list[tuple[str, str]] = []
    used: dict[str, str] = {}
    for machine in dict.fromkeys(machines):
        path = machine
        if base_dir is not None and ("/" in machine or machine.endswith(".toml")) \
                and not os.path.isabs(machine):
            path = str(Path(base_dir) / machine)
        try:
            cfg = load_machine(path)
            text = dump_toml(machine_dict(path),
                             f"{cfg.name}: {cfg.description}\nthe machine of this report, "
                             f"written by hwemu {hwemu_version()}; 'hwemu run --machine' and "
                             "'hwemu compare --machine' take this file")
        except (HwemuError, OSError):
            continue
        stem = _slug(Path(machine).stem if machine.endswith(".toml") else machine)
        name = stem
        k = 1
        while used.get(name, text) != text:
            k += 1
            name = f"{stem}-{k}"
        used[name] = text
        rel = f"{MACHINES_DIR}/{name}.toml"
        (out / MACHINES_DIR).mkdir(parents=True, exist_ok=True)
        with atomic_write(out / rel, encoding="utf-8", newline="\n") as fh:
            fh.write(text)
        files.append((machine, rel))
    return tuple(sorted(files))
