"""Chat backends: the embedded llama.cpp model and any OpenAI-compatible server."""

from __future__ import annotations

from ..config import Settings
from .base import Backend


def make_backend(settings: Settings, name: str | None = None) -> Backend:
    name, config = settings.backend(name)
    if config.kind == "local":
        from .local import LocalBackend

        return LocalBackend(name, config)
    from .openai import OpenAIBackend

    return OpenAIBackend(name, config)
