"""Secrets kept out of everything stored, exported, logged or shown.

The one place that decides what a secret is: values of environment variables that
look like keys, the strings a caller knows to be secret (the config's header values
and API keys), and credentials inside URLs. The store's scrubber and every error
path (error bodies, exception messages) use it.
"""

from __future__ import annotations

import dataclasses
import os
import re
from typing import Any

REDACTED = "[redacted]"

_SECRET_ENV = re.compile(r"KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL", re.I)
# Dict fields that hold secrets by their name: dropped whole, whatever their value.
_SECRET_FIELDS = {"api_key", "apikey", "authorization", "headers", "extra_headers", "default_headers",
                  "password", "secret", "token", "access_token", "bearer", "cookie"}
# Header names whose values are credentials. Other headers (HTTP-Referer, X-Title) carry ordinary
# words and URLs that also appear in prompts: treating them as secrets would redact the user's text.
# "auth" covers Authorization and Proxy-Authorization.
_SECRET_HEADER = re.compile(r"(?i)auth|cookie|key|token|secret|password")
_URL_USERINFO = re.compile(r"(://)[^/\s:@]+:[^/\s@]+@")
# A token after "Bearer" in an error message (a server echoing our Authorization header).
# Only for messages: a stored answer that explains "Authorization: Bearer <token>" stays exact.
_BEARER = re.compile(r"(?i)(\bbearer\s+)[^\s\"',;)\]}]{4,}")


def env_secrets() -> set[str]:
    """Values of environment variables that look like keys: never stored or shown, wherever they appear.
    (Not values that are themselves variable names, like api_key_env = "OPENAI_API_KEY".)"""
    return {v for k, v in os.environ.items()
            if _SECRET_ENV.search(k) and len(v.strip()) >= 8 and not re.fullmatch(r"[A-Z][A-Z0-9_]*", v)}


def is_secret_header(name: str) -> bool:
    """Whether a header's value is a credential (Authorization, X-Api-Key, ...), not an ordinary word."""
    return bool(_SECRET_HEADER.search(name))


class Redactor:
    """Replaces secrets with [redacted]; `extra` are strings known to be secret."""

    def __init__(self, extra: tuple[str, ...] | list[str] = ()):
        secrets = env_secrets() | {s for s in extra if s and len(s) >= 4}
        self.secrets = sorted(secrets, key=len, reverse=True)  # longest first: no partial leftovers

    def text(self, value: str) -> str:
        """Known secrets and URL credentials out of text that is kept (the store, exports)."""
        for secret in self.secrets:
            if secret in value:
                value = value.replace(secret, REDACTED)
        return _URL_USERINFO.sub(r"\1" + REDACTED + "@", value) if "@" in value else value

    def message(self, value: str) -> str:
        """`text`, and any bearer token too: for error messages, which no one needs verbatim."""
        value = self.text(value)
        return _BEARER.sub(r"\1" + REDACTED, value) if "earer" in value or "EARER" in value else value

    def value(self, obj: Any) -> Any:
        """A JSON-able copy of `obj` with secret text replaced and secret-named fields dropped."""
        if isinstance(obj, str):
            return self.text(obj)
        if isinstance(obj, dict):
            return {str(k): self.value(v) for k, v in obj.items()
                    if not (str(k).lower() in _SECRET_FIELDS or str(k).lower().endswith("api_key"))}
        if isinstance(obj, (list, tuple)):
            return [self.value(v) for v in obj]
        if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
            return self.value(dataclasses.asdict(obj))
        if hasattr(obj, "model_dump"):  # a pydantic model (not imported here: error paths stay light)
            return self.value(obj.model_dump(mode="json"))
        return obj


def redact(message: str, extra: tuple[str, ...] | list[str] = ()) -> str:
    """An error message with every secret we can recognise replaced."""
    return Redactor(extra).message(message)
