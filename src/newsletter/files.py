"""Writing files atomically: a failure leaves every file as it was."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Collection
from pathlib import Path

from .errors import InputError

__all__ = ["check_writable", "write_atomic"]


def _umask() -> int:
    # os.umask can only be read by setting it; set it back at once.
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_atomic(files: dict[Path, bytes], *, private: Collection[Path] = ()) -> None:
    """Write several files so that a failure leaves every one of them as it was.

    Each file goes to a temp file beside it first; only when all are on disk are they
    renamed into place, so a full disk halfway leaves no mix of old and new outputs.
    Files get the usual mode for the umask (a web server may have to read them), except
    those in ``private``, which are 0600 before they get their name.
    """
    shared = 0o666 & ~_umask()
    staged: list[tuple[str, Path]] = []
    try:
        for path, data in files.items():
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
            staged.append((tmp, path))
            with os.fdopen(fd, "wb") as fh:
                os.fchmod(fh.fileno(), 0o600 if path in private else shared)
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
        for tmp, path in staged:
            os.replace(tmp, path)
    except OSError as exc:
        where = exc.filename or (staged[-1][1].parent if staged else next(iter(files), ""))
        raise InputError(f"cannot write: {exc.strerror or exc}", str(where)) from None
    finally:
        for tmp, _ in staged:
            Path(tmp).unlink(missing_ok=True)


def check_writable(folder: Path, *names: str, what: str = "") -> None:
    """Refuse, in one line, a folder that cannot be made or written to, before any work.

    Creates ``folder`` (and its parents) if missing, writes and removes a probe file in
    it, and refuses if one of ``names`` inside it is a folder (a file could not replace
    it). ``what`` names the setting, e.g. ``[paths] output_dir``. A send checks its
    output folder this way before the first message, not when writing its report.
    """
    where = f"{what} {folder}" if what else str(folder)
    blocker = next((p for p in (folder, *folder.parents) if p.exists()), None)
    if blocker is not None and not blocker.is_dir():
        raise InputError(f"{blocker} is a file, not a folder", where)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=folder, prefix=".probe.", suffix=".tmp")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise InputError(f"cannot write there: {exc.strerror or exc}", where) from None
    for name in names:
        if (folder / name).is_dir():
            raise InputError(f"{folder / name} is a folder; it must be a file", where)
