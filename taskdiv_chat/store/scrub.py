"""Secrets never reach the file: key-like environment values, secret fields, passwords in URLs."""

from __future__ import annotations

import dataclasses
import json
import os
import re
from typing import Any

from pydantic import BaseModel

from .errors import StoreError

REDACTED = "[redacted]"

_SECRET_ENV = re.compile(r"KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL", re.I)
_SECRET_FIELDS = {"api_key", "apikey", "authorization", "headers", "extra_headers", "default_headers",
                  "password", "secret", "token", "access_token", "bearer", "cookie"}
_URL_USERINFO = re.compile(r"(://)[^/\s:@]+:[^/\s@]+@")


def _env_secrets() -> set[str]:
    """Values of environment variables that look like keys: never stored, wherever they appear.
    (Not values that are themselves variable names, like api_key_env = "OPENAI_API_KEY".)"""
    return {v for k, v in os.environ.items()
            if _SECRET_ENV.search(k) and len(v.strip()) >= 8 and not re.fullmatch(r"[A-Z][A-Z0-9_]*", v)}


class Scrubber:
    def __init__(self, extra: tuple[str, ...] = ()):
        secrets = _env_secrets() | {s for s in extra if s and len(s) >= 4}
        self.secrets = sorted(secrets, key=len, reverse=True)  # longest first: no partial leftovers

    def text(self, value: str) -> str:
        for secret in self.secrets:
            if secret in value:
                value = value.replace(secret, REDACTED)
        return _URL_USERINFO.sub(r"\1" + REDACTED + "@", value) if "@" in value else value

    def value(self, obj: Any) -> Any:
        if isinstance(obj, str):
            return self.text(obj)
        if isinstance(obj, dict):
            return {str(k): self.value(v) for k, v in obj.items()
                    if not (str(k).lower() in _SECRET_FIELDS or str(k).lower().endswith("api_key"))}
        if isinstance(obj, (list, tuple)):
            return [self.value(v) for v in obj]
        if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
            return self.value(dataclasses.asdict(obj))
        if isinstance(obj, BaseModel):
            return self.value(obj.model_dump(mode="json"))
        return obj

    def json(self, obj: Any) -> str | None:
        if obj is None:
            return None
        try:
            return json.dumps(self.value(obj), ensure_ascii=False)
        except (TypeError, ValueError) as exc:
            raise StoreError(f"cannot store {type(obj).__name__} as JSON: {exc}") from None
