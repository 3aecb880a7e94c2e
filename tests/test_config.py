"""Config loading: TOML validated by pydantic, env overrides, one clear message per problem."""

from __future__ import annotations

import os

import pytest

from taskdiv_chat.config import (
    EXAMPLE_CONFIG,
    ConfigError,
    Settings,
    check_api_keys,
    config_path,
    load_settings,
)
from tests.support import write_config

OLLAMA = '''\
default_backend = "ollama"

[backends.ollama]
base_url = "http://localhost:11434/v1"
model = "llama3.1:8b"
context_window = 8192

[backends.openai]
base_url = "https://api.openai.com/v1"
model = "gpt-4o-mini"
api_key_env = "TEST_OPENAI_KEY"
'''


def error_of(text: str) -> str:
    write_config(text)
    with pytest.raises(ConfigError) as caught:
        load_settings()
    message = str(caught.value)
    assert "\n" not in message  # one line, no traceback
    return message


def test_defaults_without_a_file():
    assert not config_path().exists()
    settings = load_settings()
    assert settings.default_backend == "local"
    name, local = settings.backend()
    assert name == "local"
    assert (local.kind, local.model, local.is_capable) == ("local", "SmolLM2-135M-Instruct", False)
    assert settings.regenerate.strategy == "anchored-icr"


def test_named_backends_and_picking_one():
    write_config(OLLAMA)
    settings = load_settings()
    assert sorted(settings.backends) == ["local", "ollama", "openai"]  # the embedded one is always there
    assert settings.backend()[0] == "ollama"
    name, openai = settings.backend("openai")
    assert (name, openai.model, openai.is_capable) == ("openai", "gpt-4o-mini", True)
    with pytest.raises(ConfigError, match="unknown backend 'nope'; configured: local, ollama, openai"):
        settings.backend("nope")


def test_example_config_is_valid():
    write_config(EXAMPLE_CONFIG)
    assert load_settings().default_backend == "local"


def test_explicit_path_wins(tmp_path):
    other = tmp_path / "elsewhere.toml"
    other.write_text('default_backend = "x"\n[backends.x]\nbase_url = "http://127.0.0.1:9/v1"\n')
    assert load_settings(other).default_backend == "x"


def test_bad_toml_names_file_and_line():
    path = write_config('default_backend = "local"\n\n[ui]\ntheme = "paper\n')
    message = error_of(path.read_text())
    assert message.startswith(f"{path}:4: invalid TOML")


def test_unknown_field_names_file_line_and_field():
    path = write_config(OLLAMA.replace('model = "llama3.1:8b"', 'modle = "llama3.1:8b"'))
    assert error_of(path.read_text()) == f"{path}:5: field 'backends.ollama.modle': unknown field"


def test_unknown_top_level_field():
    path = write_config('default_backend = "local"\ncolour = "blue"\n')
    assert error_of(path.read_text()) == f"{path}:2: field 'colour': unknown field"


def test_wrong_type_names_file_line_and_field():
    path = write_config(OLLAMA.replace("context_window = 8192", 'context_window = "big"'))
    message = error_of(path.read_text())
    assert message.startswith(f"{path}:6: field 'backends.ollama.context_window': ")
    assert "integer" in message


def test_out_of_range_value():
    path = write_config('[regenerate]\nstrategy = "general-icr"\nbrainstorm_n = 1\n')
    message = error_of(path.read_text())
    assert message.startswith(f"{path}:3: field 'regenerate.brainstorm_n': ")
    assert "greater than or equal to 2" in message


def test_openai_backend_without_base_url():
    path = write_config('[backends.mine]\nmodel = "m"\n')
    message = error_of(path.read_text())
    assert message.startswith(f"{path}:1: field 'backends.mine': ")
    assert "needs base_url" in message


def test_default_backend_that_does_not_exist():
    path = write_config('# my config\ndefault_backend = "olama"\n[backends.ollama]\nbase_url = "http://localhost:11434/v1"\n')
    message = error_of(path.read_text())
    assert message.startswith(f"{path}:2: field 'default_backend': ")
    assert "'olama' is not one of ['local', 'ollama']" in message


def test_missing_api_key_env_names_file_line_field_and_variable(monkeypatch):
    path = write_config(OLLAMA)
    monkeypatch.delenv("TEST_OPENAI_KEY", raising=False)
    settings = load_settings()
    check_api_keys(settings, names=["ollama"])  # a backend without a key is fine
    with pytest.raises(ConfigError) as caught:
        check_api_keys(settings)
    message = str(caught.value)
    assert message.startswith(f"{path}:11: field 'backends.openai.api_key_env': ")
    assert "TEST_OPENAI_KEY is not set" in message
    monkeypatch.setenv("TEST_OPENAI_KEY", "sk-secret-value")
    check_api_keys(settings)
    assert settings.backends["openai"].api_key() == "sk-secret-value"


def test_api_key_is_never_part_of_the_settings(monkeypatch):
    monkeypatch.setenv("TEST_OPENAI_KEY", "sk-secret-value")
    write_config(OLLAMA)
    settings = load_settings()
    assert "sk-secret-value" not in settings.model_dump_json()
    assert "sk-secret-value" not in repr(settings)


def test_env_overrides_single_fields(monkeypatch):
    write_config(OLLAMA)
    monkeypatch.setenv("TASKDIV_DEFAULT_BACKEND", "openai")
    monkeypatch.setenv("TASKDIV_BACKENDS__OLLAMA__MODEL", "qwen2.5:7b")
    monkeypatch.setenv("TASKDIV_BACKENDS__OLLAMA__CONTEXT_WINDOW", "16384")
    monkeypatch.setenv("TASKDIV_BACKENDS__OPENAI__HEADERS", '{"X-Title": "taskdiv"}')
    monkeypatch.setenv("TASKDIV_UI__THEME", "paper")
    settings = load_settings()
    assert settings.default_backend == "openai"
    ollama = settings.backends["ollama"]
    assert (ollama.model, ollama.context_window, ollama.base_url) == ("qwen2.5:7b", 16384, "http://localhost:11434/v1")
    assert settings.backends["openai"].headers == {"X-Title": "taskdiv"}
    assert settings.ui.theme == "paper"
    assert load_settings(env=False).default_backend == "ollama"


def test_env_override_of_a_numeric_looking_model_name_stays_a_string(monkeypatch):
    write_config(OLLAMA)
    monkeypatch.setenv("TASKDIV_BACKENDS__OLLAMA__MODEL", "1234")
    assert load_settings().backends["ollama"].model == "1234"


def test_env_overrides_without_a_file(monkeypatch):
    monkeypatch.setenv("TASKDIV_BACKENDS__LOCAL__MAX_TOKENS", "64")
    monkeypatch.setenv("TASKDIV_BACKENDS__LOCAL__KIND", "local")
    settings = load_settings()
    assert settings.backends["local"].max_tokens == 64


def test_bad_env_value_names_the_variable(monkeypatch):
    write_config(OLLAMA)
    monkeypatch.setenv("TASKDIV_BACKENDS__OLLAMA__CONTEXT_WINDOW", "lots")
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert str(caught.value).startswith(
        "environment variable TASKDIV_BACKENDS__OLLAMA__CONTEXT_WINDOW: field 'backends.ollama.context_window': ")


def test_env_default_backend_that_does_not_exist(monkeypatch):
    write_config(OLLAMA)
    monkeypatch.setenv("TASKDIV_DEFAULT_BACKEND", "vllm")
    with pytest.raises(ConfigError, match="^environment variable TASKDIV_DEFAULT_BACKEND: field 'default_backend': "):
        load_settings()


def test_unknown_env_variable_is_reported(monkeypatch):
    monkeypatch.setenv("TASKDIV_THEME", "paper")  # should have been TASKDIV_UI__THEME
    with pytest.raises(ConfigError, match="^environment variable TASKDIV_THEME: field 'theme': unknown field$"):
        load_settings()


def test_unreadable_file_is_a_config_error():
    path = config_path()
    path.mkdir(parents=True)  # a directory where the file should be
    with pytest.raises(ConfigError, match=f"^{path}: cannot read"):
        load_settings()


def test_settings_can_be_built_in_code():
    settings = Settings()
    assert settings.default_backend == "local"
    assert os.environ["TASKDIV_CONFIG"].endswith("config.toml")
