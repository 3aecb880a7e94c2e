"""Settings: one pydantic model read from a TOML file, single fields overridable by env.

Path of the file: --config, else $TASKDIV_CONFIG, else the platform config dir.
Single fields: TASKDIV_<FIELD> or TASKDIV_<SECTION>__<FIELD>, e.g.
TASKDIV_DEFAULT_BACKEND=openai, TASKDIV_UI__THEME=paper,
TASKDIV_BACKENDS__OPENAI__MODEL=gpt-4o-mini.
API keys are never in the file: a backend names the env var that holds its key.
"""

from __future__ import annotations

import importlib.resources
import json
import os
import re
import tomllib
import urllib.parse
from pathlib import Path
from typing import Literal, get_args

import platformdirs
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from . import paths
from .redact import is_secret_header

APP_NAME = paths.APP_NAME
LOCAL_BACKEND = "local"
STRATEGIES = ("temperature", "general-icr", "anchored-icr", "general-system", "anchored-system")
_RESERVED_ENV = {"TASKDIV_CONFIG", "TASKDIV_DATA_DIR", "TASKDIV_CACHE_DIR"}
MAX_CONFIG_BYTES = 1024 * 1024  # a config file is a few hundred bytes; a bigger one is a mistake
# What httpx sends without complaint, so that a config that passes `config check` cannot crash `ask`.
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_HEADER_VALUE = re.compile(r"[\t\x20-\x7e]*")  # printable ASCII: no line breaks, no controls
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_URL_FORBIDDEN = re.compile(r"[\x00-\x20\x7f-\x9f]")


class ConfigError(Exception):
    """A config problem, already phrased for the user: file, line, field, what is wrong."""


class _Strict(BaseModel):
    # inf and nan are valid TOML floats; no field here means anything by them
    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)


class BackendConfig(_Strict):
    kind: Literal["openai", "local"] = "openai"
    base_url: str | None = None  # e.g. http://localhost:11434/v1 for Ollama
    model: str | None = None
    api_key_env: str | None = None  # name of the env var holding the key; never the key
    context_window: int = Field(8192, gt=0, le=100_000_000)
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, gt=0, le=1)
    max_tokens: int | None = Field(None, gt=0, le=100_000_000)
    repeat_penalty: float | None = Field(None, gt=0, le=100)  # llama.cpp only
    headers: dict[str, str] = {}
    connect_timeout: float = Field(10.0, gt=0, le=86400)
    read_timeout: float = Field(120.0, gt=0, le=86400)  # longest silence between two reads
    # The whole answer, retries and their waits included; a trickling or endless stream ends here.
    answer_timeout: float = Field(900.0, gt=0, le=86400)
    max_answer_chars: int = Field(1_000_000, gt=0, le=100_000_000)  # a bigger answer is cut there
    max_retries: int = Field(3, ge=0, le=10)
    # A capable model may classify prompts and judge pairs; the embedded 135M one may not.
    capable: bool | None = None
    threads: int | None = Field(None, gt=0, le=1024)  # llama.cpp only

    @field_validator("base_url")
    @classmethod
    def _check_base_url(cls, url: str | None) -> str | None:
        if url is None:
            return url
        if _URL_FORBIDDEN.search(url):
            raise ValueError("base_url has a space or a control character in it")
        try:
            parts = urllib.parse.urlsplit(url)
            port = parts.port  # raises for a port out of range or not a number
        except ValueError as exc:  # e.g. "Invalid IPv6 URL", "Port out of range 0-65535"
            raise ValueError(f"base_url is not a valid URL: {exc}") from None
        if parts.scheme.lower() not in ("http", "https"):
            raise ValueError("base_url must start with http:// or https:// (e.g. http://localhost:11434/v1)")
        if not parts.hostname:
            raise ValueError("base_url has no host name (e.g. http://localhost:11434/v1)")
        if port == 0:
            raise ValueError("base_url has port 0")
        if parts.query or parts.fragment:
            raise ValueError("base_url takes no ?query or #fragment")
        return url

    @field_validator("headers")
    @classmethod
    def _check_headers(cls, headers: dict[str, str]) -> dict[str, str]:
        for name, value in headers.items():
            if not _HEADER_NAME.fullmatch(name):
                raise ValueError(f"{name!r} is not a valid HTTP header name")
            if not _HEADER_VALUE.fullmatch(value):  # the value is not echoed: it may be a secret
                raise ValueError(f"the value of header {name!r} has characters an HTTP header cannot carry "
                                 f"(non-ASCII, a line break or a control character)")
        return headers

    @field_validator("api_key_env")
    @classmethod
    def _check_api_key_env(cls, name: str | None) -> str | None:
        if name is not None and not _ENV_NAME.fullmatch(name):
            raise ValueError(f"{name!r} is not an environment variable name (letters, digits and _)")
        return name

    @model_validator(mode="after")
    def _check(self) -> "BackendConfig":
        if self.kind == "openai" and not self.base_url:
            raise ValueError("an openai backend needs base_url")
        return self

    @property
    def is_capable(self) -> bool:
        return self.capable if self.capable is not None else self.kind == "openai"

    def api_key(self) -> str | None:
        """The key from the environment, or None; a ConfigError when it cannot go in a header."""
        key = self._raw_api_key()
        if key is not None and not _HEADER_VALUE.fullmatch(key):
            raise ConfigError(f"environment variable {self.api_key_env} holds characters an HTTP header cannot "
                              f"carry (non-ASCII, a line break or a control character); check the key")
        return key

    def _raw_api_key(self) -> str | None:
        key = os.environ.get(self.api_key_env) if self.api_key_env else None
        return key.strip() if key is not None else None  # a key pasted with its newline still works


def _default_backends() -> dict[str, BackendConfig]:
    return {LOCAL_BACKEND: BackendConfig(kind="local", model="SmolLM2-135M-Instruct", context_window=4096,
                                         temperature=0.7, top_p=0.9, max_tokens=512, repeat_penalty=1.1)}


# How a turn is classified and how answers are judged: on this machine (local), by the chat model
# (llm), or local refined by a capable remote model (auto).
Method = Literal["auto", "local", "llm"]
METHODS: tuple[str, ...] = get_args(Method)


class ClassifyConfig(_Strict):
    method: Method = "auto"
    trust: Literal["local", "llm"] = "llm"  # which answer auto keeps when both ran


class RegenerateConfig(_Strict):
    strategy: Literal[STRATEGIES] = "anchored-icr"  # type: ignore[valid-type]
    brainstorm_n: int = Field(3, ge=2, le=10)


class JudgeConfig(_Strict):
    method: Method = "auto"
    backend: str | None = None  # judge with another backend than the chat one
    concurrency: int = Field(4, ge=1, le=64)


class CompareConfig(_Strict):
    backends: list[str] = []  # names under [backends]; `compare` and the TUI's send-to-all use them
    n: int = Field(1, ge=1, le=10)  # answers per backend


class UIConfig(_Strict):
    theme: str = "taskdiv-dark"
    keymap: dict[str, str] = {}  # binding id -> keys, e.g. regenerate = "ctrl+r,f5"


class Settings(_Strict):
    default_backend: str = LOCAL_BACKEND
    backends: dict[str, BackendConfig] = Field(default_factory=_default_backends)
    classify: ClassifyConfig = ClassifyConfig()
    regenerate: RegenerateConfig = RegenerateConfig()
    judge: JudgeConfig = JudgeConfig()
    compare: CompareConfig = CompareConfig()
    ui: UIConfig = UIConfig()

    @model_validator(mode="after")
    def _check(self) -> "Settings":
        if LOCAL_BACKEND not in self.backends:  # the embedded default is always there
            self.backends = {**_default_backends(), **self.backends}
        if self.default_backend not in self.backends:
            raise ValueError(f"default_backend {self.default_backend!r} is not one of {sorted(self.backends)}")
        unknown = [name for name in self.compare.backends if name not in self.backends]
        if unknown:
            raise ValueError(f"compare.backends: {', '.join(map(repr, unknown))} not one of {sorted(self.backends)}")
        return self

    def secret_values(self) -> tuple[str, ...]:
        """Secret header values (by header name) and API keys of every backend: never to store, log or export."""
        values = {v for b in self.backends.values() for k, v in b.headers.items() if is_secret_header(k)}
        values |= {key for b in self.backends.values() if (key := b._raw_api_key())}
        return tuple(sorted(values))

    def backend(self, name: str | None = None) -> tuple[str, BackendConfig]:
        name = name or self.default_backend
        if name not in self.backends:
            raise ConfigError(f"unknown backend {name!r}; configured: {', '.join(sorted(self.backends))}")
        return name, self.backends[name]


# --- paths -------------------------------------------------------------------------------


def config_path(explicit: str | os.PathLike | None = None) -> Path:
    if explicit:
        return Path(explicit).expanduser()
    if env := os.environ.get("TASKDIV_CONFIG"):
        return Path(env).expanduser()
    return Path(platformdirs.user_config_dir(APP_NAME)) / "config.toml"


def data_dir() -> Path:
    return paths.data_dir()


def cache_dir() -> Path:
    return Path(os.environ.get("TASKDIV_CACHE_DIR") or platformdirs.user_cache_dir(APP_NAME)).expanduser()


def user_themes_dir(path: Path | None = None) -> Path:
    return (path or config_path()).parent / "themes"


def bundled_themes_dir() -> Path:
    """The themes shipped inside the package (in a checkout, a link to the repository's themes/)."""
    return Path(str(importlib.resources.files("taskdiv_chat") / "themes"))


# --- loading -----------------------------------------------------------------------------


def _find_line(text: str, loc: tuple) -> int | None:
    """Best-effort line number (1-based) of a dotted field path in TOML text."""
    keys = [str(k) for k in loc if not isinstance(k, int)]
    if not keys:
        return None
    lines = text.splitlines()
    header = re.compile(r"^\s*\[+\s*([^\]]+?)\s*\]+")
    # Try the longest table prefix, then the key inside that table.
    for split in range(len(keys), -1, -1):  # the whole path may name a table itself
        table, rest = keys[:split], keys[split:]
        table_name = ".".join(table)
        in_table = not table
        for number, line in enumerate(lines, 1):
            m = header.match(line)
            if m:
                in_table = m.group(1).replace('"', "").replace(" ", "") == table_name
                if in_table and not rest:
                    return number
                continue
            if in_table and rest and re.match(rf"^\s*\"?{re.escape('.'.join(rest))}\"?\s*=", line):
                return number
            if in_table and rest and re.match(rf"^\s*\"?{re.escape(rest[0])}\"?\s*=", line):
                return number
    return None


def read_config_text(file: Path) -> str | None:
    """The text of the config file, None when there is none. A FIFO (which would hang), a
    device such as /dev/zero (which never ends) or a huge file is a ConfigError, not a read."""
    try:
        return paths.read_text_file(file, MAX_CONFIG_BYTES)
    except FileNotFoundError:
        return None
    except paths.UnreadableFile as exc:
        raise ConfigError(f"{file}: {exc}; give the path of a TOML config file") from None


def _env_overrides(data: dict, sources: dict[tuple, str] | None = None) -> dict:
    """Apply TASKDIV_* env vars to the raw dict; `sources` gets field path -> variable name.

    Values stay strings (pydantic turns "8192" into an int where a field wants one, and
    a model called "1234" stays a string); JSON objects/arrays are parsed for dict fields.
    """
    for var, raw in os.environ.items():
        if not var.startswith("TASKDIV_") or var in _RESERVED_ENV:
            continue
        path = [p.lower() for p in var[len("TASKDIV_"):].split("__")]
        value = raw
        if raw.lstrip().startswith(("{", "[")):
            try:
                value = json.loads(raw)
            except (ValueError, RecursionError):
                pass
        if sources is not None:
            sources[tuple(path)] = var
        node = data
        for key in path[:-1]:
            node = node.setdefault(key, {})
            if not isinstance(node, dict):
                break
        else:
            node[path[-1]] = value
    return data


def load_settings(path: str | os.PathLike | None = None, *, env: bool = True) -> Settings:
    """Read and validate the config file (a missing file means defaults)."""
    file = config_path(path)
    text = read_config_text(file) or ""
    data: dict = {}
    if text:
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            # Python 3.11's tomllib puts the position only in the message: "... (at line 2, column 4)"
            m = re.search(r"\(at line (\d+), column (\d+)\)", str(exc))
            where = f"{file}:{m.group(1)}" if m else str(file)
            msg = re.sub(r"\s*\(at line \d+, column \d+\)", "", str(exc))
            raise ConfigError(f"{where}: invalid TOML: {msg}") from None
        except RecursionError:
            raise ConfigError(f"{file}: invalid TOML: arrays or tables nested too deeply") from None
    sources: dict[tuple, str] = {}
    if env:
        data = _env_overrides(data, sources)
    try:
        return Settings.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = tuple(err["loc"])
        msg = err["msg"]
        if not loc and "compare.backends" in msg:  # raised by Settings' own check, which has no field
            loc = ("compare", "backends")
        elif not loc and "default_backend" in msg:
            loc = ("default_backend",)
        field = ".".join(str(k) for k in loc) or "(top level)"
        line = _find_line(text, loc) if text else None
        where = f"{file}:{line}" if line else str(file)
        keys = tuple(str(k) for k in loc)
        for env_path, var in sources.items():  # a bad value from the environment: name the variable
            if keys[: len(env_path)] == env_path or (env_path[: len(keys)] == keys and line is None):
                where = f"environment variable {var}"
                break
        if err["type"] == "extra_forbidden":
            msg = "unknown field"
        more = f" (and {len(exc.errors()) - 1} more)" if len(exc.errors()) > 1 else ""
        raise ConfigError(f"{where}: field '{field}': {msg}{more}") from None


def check_api_keys(settings: Settings, path: str | os.PathLike | None = None,
                   names: list[str] | None = None) -> None:
    """Fail with file, line and field when a backend's api_key_env is not set."""
    file = config_path(path)
    text = read_config_text(file) or ""
    for name in names if names is not None else list(settings.backends):
        backend = settings.backends[name]
        if not backend.api_key_env:
            continue
        line = _find_line(text, ("backends", name, "api_key_env")) if text else None
        where = f"{file}:{line}: field 'backends.{name}.api_key_env'" if line else \
            f"{file}: field 'backends.{name}.api_key_env'"
        if not backend._raw_api_key():
            raise ConfigError(f"{where}: environment variable {backend.api_key_env} is not set "
                              f"(export it to use backend {name!r})")
        try:
            backend.api_key()
        except ConfigError as exc:
            raise ConfigError(f"{where}: {exc}") from None


EXAMPLE_CONFIG = """\
# taskdiv-chat config. Switch to a real server with one line: default_backend = "ollama"
default_backend = "local"

[backends.ollama]
base_url = "http://localhost:11434/v1"
model = "llama3.1:8b"
context_window = 8192

# [backends.openai]
# base_url = "https://api.openai.com/v1"
# model = "gpt-4o-mini"
# api_key_env = "OPENAI_API_KEY"   # the key itself stays in your environment
# context_window = 128000
# temperature = 1.0

# [compare]                       # `taskdiv-chat compare PROMPT` and the chat's send-to-all
# backends = ["local", "ollama"]  # each one defined under [backends]
# n = 1                           # answers per backend

[regenerate]
strategy = "anchored-icr"   # temperature | general-icr | anchored-icr | general-system | anchored-system

[ui]
theme = "taskdiv-dark"
"""


def load_for_backend(path: str | os.PathLike | None = None, backend: str | None = None) -> tuple[Settings, str]:
    """The config and the backend to use (None: default_backend), with that backend's API key checked;
    raises ConfigError when anything is broken. The command line and the TUI both start here."""
    settings = load_settings(path)
    name, _ = settings.backend(backend)
    check_api_keys(settings, path, [name])
    return settings, name
