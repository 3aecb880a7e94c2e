"""Where the app keeps its data, and the one way to create it: private to the user.

Kept free of the config (pydantic) so the UI can use it before its first paint.
The data dir holds the conversation database and exports, so it is created 0700 on
every path (the UI, `ask`, the store, bench runs); files in it are written 0600.
"""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path

APP_NAME = "taskdiv-chat"


def data_dir() -> Path:
    import platformdirs

    return Path(os.environ.get("TASKDIV_DATA_DIR") or platformdirs.user_data_dir(APP_NAME)).expanduser()


def private_dir(path: Path) -> Path:
    """`path`, created 0700 if missing, and so is every missing directory above it (the
    exports folder's data dir, say). An existing directory is left as it is: it may be one
    the user chose and shares on purpose."""
    missing = []
    while not path.is_dir() and path != path.parent and path not in missing:
        missing.append(path)
        path = path.parent
    for folder in reversed(missing):
        try:
            folder.mkdir(mode=0o700)
        except FileExistsError:
            continue  # made meanwhile by another instance (or a file there: the caller's open says so)
        os.chmod(folder, 0o700)  # whatever the umask
    return missing[0] if missing else path


def ensure_data_dir() -> Path:
    """The data dir, created 0700 if missing. The platform default one is ours alone: if an
    older version left it open to others (0755), it is closed now."""
    path = private_dir(data_dir())
    if not os.environ.get("TASKDIV_DATA_DIR"):
        try:
            info = path.stat()
            if info.st_uid == os.getuid() and info.st_mode & 0o077:
                os.chmod(path, 0o700)
        except OSError:
            pass  # not ours to fix; opening the database says what is wrong
    return path


def write_private(path: Path, text: str) -> None:
    """Write `text` to `path` as a 0600 file, whole or not at all (a temp file beside it, then
    renamed), so an export holding a conversation is never readable by other users.
    A path that is not a regular file (/dev/stdout, a FIFO) is written as it is."""
    if path.exists() and not path.is_file():
        with open(path, "w", encoding="utf-8") as stream:
            stream.write(text)
        return
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")  # mkstemp: 0600
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as stream:
            stream.write(text)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


class UnreadableFile(Exception):
    """A file we will not read, already phrased: "cannot read: <why>"."""


def read_text_file(path: Path, limit: int) -> str:
    """A UTF-8 text file of at most `limit` bytes. A FIFO (reading would wait forever), a device
    such as /dev/zero (it never ends), a directory, a bigger file or one that is not UTF-8
    is an UnreadableFile saying which; FileNotFoundError passes through."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)  # opening a FIFO must not wait for a writer
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise UnreadableFile(f"cannot read: {exc.strerror or exc}") from None
    try:
        mode = os.fstat(fd).st_mode
        if stat.S_ISDIR(mode):
            raise UnreadableFile("cannot read: it is a directory")
        if not stat.S_ISREG(mode):
            raise UnreadableFile("cannot read: not a regular file (a FIFO, device or socket)")
        with os.fdopen(fd, "rb", closefd=False) as stream:
            data = stream.read(limit + 1)
    except OSError as exc:
        raise UnreadableFile(f"cannot read: {exc.strerror or exc}") from None
    finally:
        os.close(fd)
    if len(data) > limit:
        raise UnreadableFile(f"cannot read: bigger than {_size(limit)}")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UnreadableFile(f"cannot read: not UTF-8 text (byte {exc.start})") from None


def _size(count: int) -> str:
    return f"{count // (1024 * 1024)} MiB" if count >= 1024 * 1024 else f"{count // 1024} KiB"
