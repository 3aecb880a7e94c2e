"""Secrets out of error messages and stored text (one Redactor), and private files and folders."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from taskdiv_chat.paths import data_dir, ensure_data_dir, private_dir, write_private
from taskdiv_chat.redact import REDACTED, Redactor, redact


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_known_secrets_env_secrets_and_url_credentials(monkeypatch):
    monkeypatch.setenv("SOME_SERVICE_TOKEN", "tok-0123456789")
    redactor = Redactor(("header-secret-value",))
    text = "a header-secret-value, tok-0123456789 and https://user:pw@host/v1"
    assert redactor.text(text) == f"a {REDACTED}, {REDACTED} and https://{REDACTED}@host/v1"


def test_messages_lose_bearer_tokens_but_stored_text_keeps_them():
    text = "401: Incorrect API key provided: Bearer sk-unknown-to-us-12345"
    assert redact(text) == f"401: Incorrect API key provided: Bearer {REDACTED}"
    assert Redactor().text(text) == text  # an answer explaining "Bearer <token>" is stored exactly


def test_secret_fields_dropped_from_structures():
    assert Redactor().value({"api_key": "x", "params": {"Authorization": "y", "temperature": 1}}) == \
        {"params": {"temperature": 1}}


def test_private_dir_creates_every_missing_folder_0700(tmp_path):
    os.umask(0o022)
    target = private_dir(tmp_path / "a" / "b" / "exports")
    assert target == tmp_path / "a" / "b" / "exports"
    for folder in (tmp_path / "a", tmp_path / "a" / "b", target):
        assert mode(folder) == 0o700
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o755)
    os.chmod(shared, 0o755)
    private_dir(shared)
    assert mode(shared) == 0o755  # one the user made is left as it is


def test_write_private_is_0600_and_replaces_a_0644_file(tmp_path):
    target = tmp_path / "export.md"
    target.write_text("old")
    os.chmod(target, 0o644)
    write_private(target, "new text")
    assert target.read_text() == "new text" and mode(target) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["export.md"]  # no temp file left


def test_default_data_dir_left_0755_by_an_older_version_is_closed(tmp_path, monkeypatch):
    monkeypatch.delenv("TASKDIV_DATA_DIR")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    old = data_dir()
    old.mkdir(parents=True)
    os.chmod(old, 0o755)
    assert ensure_data_dir() == old and mode(old) == 0o700


def test_ui_state_creates_the_data_dir_0700():
    from taskdiv_chat.tui.state import save_state, state_path

    save_state(theme="paper")
    assert state_path().parent == data_dir()
    assert mode(data_dir()) == 0o700
