"""Writing files atomically: a failure leaves every file as it was."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Collection
from pathlib import Path

from .errors import InputError

__all__ = ["write_atomic"]


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
