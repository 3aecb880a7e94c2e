"""The real `taskdiv-chat` command in a pseudo-terminal, for tests of what a user's terminal sees."""

from __future__ import annotations

import fcntl
import os
import pty
import struct
import subprocess
import sys
import termios


def start_in_pty(rows: int, cols: int) -> tuple[subprocess.Popen, int]:
    """(process, master fd): `python -m taskdiv_chat` on a rows x cols terminal; read and write the fd."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
    proc = subprocess.Popen([sys.executable, "-m", "taskdiv_chat"], stdin=slave, stdout=slave, stderr=slave,
                            env={**os.environ, "TERM": "xterm-256color"}, close_fds=True)
    os.close(slave)
    return proc, master
