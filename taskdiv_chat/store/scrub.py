"""Secrets never reach the file: what redact.Redactor recognises (key-like environment values,
the config's keys and header values, passwords in URLs) is replaced, secret fields dropped."""

from __future__ import annotations

import json
from typing import Any

from ..redact import REDACTED, Redactor
from .errors import StoreError

__all__ = ["REDACTED", "Scrubber"]


class Scrubber(Redactor):
    def json(self, obj: Any) -> str | None:
        if obj is None:
            return None
        try:
            return json.dumps(self.value(obj), ensure_ascii=False)
        except (TypeError, ValueError) as exc:
            raise StoreError(f"cannot store {type(obj).__name__} as JSON: {exc}") from None
