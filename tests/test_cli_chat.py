"""`ask`, `models`, `locate`, `config check|init` through the real console entry point."""

from __future__ import annotations

import json

import pytest

from tests.support import fake_config, run_cli, write_config
from tests.support.fake_server import Reply


def test_ask_streams_answer_from_server(fake_server):
    fake_server.responder = lambda body: Reply("Rain falls on the roof")
    fake_config(fake_server)
    out = run_cli("ask", "Write a haiku about rain", "--no-save")
    assert out.returncode == 0, out.stderr
    assert out.stdout == "Rain falls on the roof\n"
    assert fake_server.requests[0]["messages"] == [{"role": "user", "content": "Write a haiku about rain"}]
    assert fake_server.requests[0]["stream"] is True


def test_ask_reads_stdin_and_prints_json(fake_server):
    fake_server.responder = lambda body: Reply("forty two")
    fake_config(fake_server)
    out = run_cli("ask", "--json", "--system", "be brief", "--temperature", "0.3", "--no-save",
                  stdin="What is six times seven?")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["text"] == "forty two"
    assert (data["backend"], data["model"]) == ("fake", "test-model")
    assert data["usage"]["completion_tokens"] == 2
    assert data["timings"]["total_s"] >= data["timings"]["first_token_s"] >= 0
    body = fake_server.requests[0]
    assert body["messages"][0] == {"role": "system", "content": "be brief"}
    assert body["temperature"] == 0.3


def test_ask_failure_is_one_line_and_nonzero(fake_server):
    fake_server.responder = lambda body: Reply(fault="401")
    fake_config(fake_server)
    out = run_cli("ask", "hi", "--no-save")
    assert out.returncode == 1
    assert "authentication failed" in out.stderr
    assert "Traceback" not in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1


def test_ask_keeps_partial_answer_on_disconnect(fake_server):
    fake_server.responder = lambda body: Reply("one two three four five", fault="disconnect", fault_after=3)
    fake_config(fake_server)
    out = run_cli("ask", "count", "--no-save")
    assert out.returncode == 1
    assert out.stdout.startswith("one two three")
    assert "dropped" in out.stderr


def test_ask_backend_flag_picks_another_backend(fake_server):
    fake_server.responder = lambda body: Reply("from other")
    write_config(f'[backends.other]\nbase_url = "{fake_server.base_url}"\nmodel = "test-model"\n')
    out = run_cli("ask", "--backend", "other", "hello", "--no-save")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "from other"
    out = run_cli("--backend", "nope", "ask", "hello", "--no-save")
    assert out.returncode == 2
    assert "unknown backend 'nope'" in out.stderr


def test_models_lists_server_models(fake_server):
    fake_config(fake_server)
    out = run_cli("models")
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["test-model"]


def test_locate_prints_paths(isolated_dirs):
    out = run_cli("locate")
    assert out.returncode == 0
    assert str(isolated_dirs / "config" / "config.toml") in out.stdout
    assert str(isolated_dirs / "data") in out.stdout
    assert str(isolated_dirs / "cache") in out.stdout


@pytest.mark.parametrize("text, expected", [
    ('default_backend = "local"\n[ui\ntheme = "x"\n', ":2: invalid TOML"),
    ('[ui]\ntheme = "x"\ncolour = "red"\n', ":3: field 'ui.colour': unknown field"),
    ('[backends.srv]\nbase_url = "http://127.0.0.1:9/v1"\ntemperature = "hot"\n',
     ":3: field 'backends.srv.temperature'"),
    ('[backends.srv]\nbase_url = "http://127.0.0.1:9/v1"\napi_key_env = "TDC_TEST_MISSING_KEY"\n',
     ":3: field 'backends.srv.api_key_env': environment variable TDC_TEST_MISSING_KEY is not set"),
])
def test_config_check_reports_file_line_field(text, expected):
    path = write_config(text)
    out = run_cli("config", "check")
    assert out.returncode == 2
    assert "Traceback" not in out.stderr
    assert f"{path}{expected}" in out.stderr


def test_config_init_then_check_is_clean():
    out = run_cli("config", "init")
    assert out.returncode == 0, out.stderr
    out = run_cli("config", "check")
    assert out.returncode == 0, out.stderr
    assert "default backend: local" in out.stdout
    assert run_cli("config", "init").returncode == 1  # never overwrites


@pytest.mark.slow
def test_ask_local_embedded_model_streams_offline():
    out = run_cli("ask", "Write a haiku about rain", "--backend", "local", "--max-tokens", "24", "--no-save")
    assert out.returncode == 0, out.stderr
    assert len(out.stdout.split()) >= 3


def test_ask_records_exchange_without_secrets(fake_server, isolated_dirs):
    fake_server.responder = lambda body: Reply("Stored answer")
    fake_config(fake_server, 'api_key_env = "TDC_TEST_API_KEY"\nheaders = { "X-Org" = "org-hidden-123" }\n')
    secret = "sk-test-0123456789abcdef"
    out = run_cli("ask", "Remember this", env={"TDC_TEST_API_KEY": secret})
    assert out.returncode == 0, out.stderr
    assert fake_server.headers[0]["authorization"] == f"Bearer {secret}"
    assert fake_server.headers[0]["x-org"] == "org-hidden-123"

    from taskdiv_chat.store import Store

    with Store() as store:
        [summary] = store.list_conversations()
        conversation = store.load_conversation(summary.id)
        assert conversation.turns[0].user.text == "Remember this"
        variant = conversation.turns[0].variants[0]
        assert (variant.text, variant.status, variant.backend) == ("Stored answer", "done", "fake")
        exported = store.export_markdown(summary.id) + str(store.export_json(summary.id))
    raw = b"".join(p.read_bytes() for p in (isolated_dirs / "data").rglob("*") if p.is_file())
    for needle in (secret, "org-hidden-123"):
        assert needle.encode() not in raw
        assert needle not in exported
