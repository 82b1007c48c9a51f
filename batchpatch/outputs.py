"""Checks on the files a run will write, before anything is sent: every output is distinct from
the input and from the others (links resolved), is not a directory, and can be created."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from .errors import UsageError
from .settings import Outputs

__all__ = ["check_outputs", "write_json_atomic"]


def _same(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve() or (a.exists() and b.exists() and os.path.samefile(a, b))
    except OSError:
        return False


def _check_writable(flag: str, path: Path) -> None:
    """Create the file's folders and try the file itself (a real try: root passes every
    permission check, not a read-only file system); a file made for the try is removed."""
    if path.is_dir():
        raise UsageError(f"{flag} {path}: is a directory; give a file name")
    if path.exists() and not path.is_file():
        raise UsageError(f"{flag} {path}: is not a regular file (a device or a pipe); give a "
                         "file name")
    for ancestor in [path.parent, *path.parent.parents]:
        if ancestor.exists():
            if not ancestor.is_dir():
                raise UsageError(f"{flag} {path}: {ancestor} is a file, not a directory")
            break
    existed = path.exists()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "ab"):
            pass
    except OSError as exc:
        raise UsageError(f"{flag} {path}: cannot write there: {exc.strerror or exc}") from None
    if not existed:
        with contextlib.suppress(OSError):
            path.unlink()


def check_outputs(input_path: str, outputs: Outputs) -> None:
    """UsageError (exit 2) naming the first output that cannot be used."""
    named = outputs.all()
    source = None if input_path == "-" else Path(input_path)
    items = list(named.items())
    for i, (flag, path) in enumerate(items):
        if source is not None and _same(path, source):
            raise UsageError(f"{flag} {path} is the input file; it would be overwritten")
        for other_flag, other in items[i + 1:]:
            if _same(path, other):
                raise UsageError(f"{flag} and {other_flag} are the same file ({path})")
        _check_writable(flag, path)


def write_json_atomic(path: Path, data: bytes) -> None:
    """Write `data` to `path` through a temp file and a rename; the temp file is removed if
    the write fails. A link is followed: the file it names is replaced, not the link."""
    path = Path(os.path.realpath(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    except OSError:
        tmp.unlink(missing_ok=True)
        raise
