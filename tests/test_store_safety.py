"""The store under crashes, concurrent app instances, and API keys in the environment."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from taskdiv_chat.store import FLUSH_INTERVAL, Store

ROOT = Path(__file__).resolve().parents[1]

STREAMER = """
import sys, time
from taskdiv_chat.store import Store
s = Store(sys.argv[1])
cid = s.create_conversation("crash test")
t1 = s.add_user_turn(cid, "first question", None)
w = s.start_variant(t1, strategy="temperature", backend="local", model="m", params={})
w.append("first answer")
w.finish("stop")
t2 = s.add_user_turn(cid, "second question", w.variant_id)
w = s.start_variant(t2, strategy="anchored-icr", backend="local", model="m", params={"temperature": 1.0})
print("ready", cid, w.variant_id, flush=True)
i = 0
while True:
    for _ in range(20):          # a burst of tokens...
        w.append(f"tok{i} ")
        i += 1
        time.sleep(0.002)
    time.sleep(float(sys.argv[2]))  # ...then a pause longer than the flush interval
    print(i, flush=True)         # everything up to token i must be on disk by now
"""


def _spawn(code: str, *args: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-c", code, *args], stdout=subprocess.PIPE, text=True, env=env,
                            cwd=ROOT)


def _tokens(n: int) -> str:
    return "".join(f"tok{i} " for i in range(n))


@pytest.mark.parametrize("kill_after", [0.0, 0.017, 0.035])
def test_sigkill_mid_stream_keeps_everything_flushed_and_marks_the_answer_cut_off(tmp_path, kill_after):
    path = tmp_path / "chat.sqlite3"
    child = _spawn(STREAMER, str(path), str(FLUSH_INTERVAL + 0.15))
    try:
        _, cid, variant_id = child.stdout.readline().split()
        cid, variant_id = int(cid), int(variant_id)
        for _ in range(2):
            reported = int(child.stdout.readline())

        # A second instance while the writer is alive: the answer is still streaming, not "crashed".
        with Store(path) as other:
            live = other.load_conversation(cid).turns[1].variants[0]
            assert live.status == "streaming" and live.text.startswith(_tokens(reported))

        reported = int(child.stdout.readline())
        time.sleep(kill_after)  # somewhere in the next burst
        child.send_signal(signal.SIGKILL)
        child.wait()  # reaped: its pid is gone
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert child.returncode == -signal.SIGKILL

    with Store(path) as store:
        assert store._db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert store._db.execute("INSERT INTO messages_fts(messages_fts) VALUES ('integrity-check')")
        conv = store.load_conversation(cid)
    first, second = conv.turns
    assert (first.user.text, first.active.text, first.active.status) == ("first question", "first answer", "done")
    assert second.user.text == "second question"
    cut = second.active
    assert cut.id == variant_id
    assert (cut.status, cut.finish_reason) == ("cut-off", "crash")
    # Everything reported before the kill is there; nothing beyond what was sent.
    assert cut.text.startswith(_tokens(reported))
    assert _tokens(reported + 20).startswith(cut.text)


def test_a_stalled_stream_still_reaches_the_disk_within_the_flush_interval(tmp_path):
    path = tmp_path / "chat.sqlite3"
    with Store(path) as store:
        cid = store.create_conversation()
        t = store.add_user_turn(cid, "q", None)
        writer = store.start_variant(t, strategy="temperature", backend="b", model="m", params={})
        reader = sqlite3.connect(path)

        def on_disk():
            return reader.execute("SELECT text FROM messages WHERE id = ?", (writer.variant_id,)).fetchone()[0]

        writer.append("a")
        writer.append("b")  # buffered: a flush per token would cost too much
        assert on_disk() == ""
        time.sleep(FLUSH_INTERVAL * 2.5)  # the stream stalls: the timer writes what is buffered
        assert on_disk() == "ab"
        time.sleep(FLUSH_INTERVAL * 1.2)
        writer.append("c")  # the first token after a quiet spell goes straight to disk
        assert on_disk() == "abc"
        reader.close()
        writer.finish("stop")


def test_closing_the_store_cuts_off_its_unfinished_answers(tmp_path):
    path = tmp_path / "chat.sqlite3"
    store = Store(path)
    cid = store.create_conversation()
    t = store.add_user_turn(cid, "q", None)
    writer = store.start_variant(t, strategy="temperature", backend="b", model="m", params={})
    writer.append("half an ans")
    store.close()
    with Store(path) as store:
        v = store.load_conversation(cid).turns[0].active
    assert (v.text, v.status, v.finish_reason) == ("half an ans", "cut-off", "cancelled")


def test_a_forgotten_writer_in_this_process_is_cut_off_on_next_open(tmp_path):
    path = tmp_path / "chat.sqlite3"
    store = Store(path)
    cid = store.create_conversation()
    t = store.add_user_turn(cid, "q", None)
    writer = store.start_variant(t, strategy="temperature", backend="b", model="m", params={})
    writer.append("partial")
    writer.flush()
    with Store(path) as other:  # same pid, writer alive: still streaming
        assert other.load_conversation(cid).turns[0].active.status == "streaming"
    writer.finished = True  # as if dropped without finish() (its store never closed)
    with Store(path) as other:
        v = other.load_conversation(cid).turns[0].active
        assert (v.status, v.finish_reason, v.text) == ("cut-off", "crash", "partial")
    store._db.close()


WORKER = """
import sys, time
from pathlib import Path
from taskdiv_chat.store import Store
path, name, cid = sys.argv[1], sys.argv[2], int(sys.argv[3])
s = Store(path)
Path(f"{path}.ready-{name}").touch()  # imported and open: a slow start must not let the other finish first
while not Path(path + ".go").exists():
    time.sleep(0.005)
parent = None
for i in range(40):
    t = s.add_user_turn(cid, f"{name} question {i}", parent)
    w = s.start_variant(t, strategy="temperature", backend="b", model="m", params={"i": i})
    for k in range(5):
        w.append(f"{name}-{i}-{k} ")
        w.flush()
    w.finish("stop", {"completion_tokens": 5}, None)
    s.save_metrics(w.variant_id, {"by": name, "i": i})
    s.set_active_variant(t, w.variant_id)
    s.save_draft(cid, f"{name} draft {i}")
    s.rename(cid, f"renamed by {name}")
    parent = w.variant_id
s.close()
print("done", flush=True)
"""


def test_two_app_instances_write_the_same_conversation_without_losing_anything(tmp_path):
    path = tmp_path / "chat.sqlite3"
    with Store(path) as store:
        cid = store.create_conversation()
    workers = [_spawn(WORKER, str(path), name, str(cid)) for name in ("alpha", "beta")]
    deadline = time.monotonic() + 60
    while not all(Path(f"{path}.ready-{name}").exists() for name in ("alpha", "beta")):
        assert time.monotonic() < deadline and all(w.poll() is None for w in workers), "a writer did not start"
        time.sleep(0.01)
    Path(str(path) + ".go").touch()
    with Store(path) as reader:  # a third instance reading all the while
        while any(w.poll() is None for w in workers):
            reader.load_conversation(cid)
            reader.search("alpha")
            time.sleep(0.01)
    for w in workers:
        assert w.wait(timeout=60) == 0
        assert w.stdout.read().strip() == "done"

    with Store(path) as store:
        db = store._db
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        ids = {name: [r[0] for r in db.execute("SELECT id FROM messages WHERE text LIKE ?", (f"{name}%",))]
               for name in ("alpha", "beta")}
        assert min(ids["beta"]) < max(ids["alpha"]) and min(ids["alpha"]) < max(ids["beta"])  # they overlapped
        for name in ("alpha", "beta"):
            users = db.execute("SELECT text FROM messages WHERE role = 'user' AND text LIKE ? ORDER BY id",
                               (f"{name} %",)).fetchall()
            assert [u[0] for u in users] == [f"{name} question {i}" for i in range(40)]
            answers = db.execute("SELECT text, status, metrics FROM messages WHERE role = 'assistant' "
                                 "AND text LIKE ? ORDER BY id", (f"{name}-%",)).fetchall()
            assert [a[0] for a in answers] == ["".join(f"{name}-{i}-{k} " for k in range(5)) for i in range(40)]
            assert {a[1] for a in answers} == {"done"}
            assert [json.loads(a[2]) for a in answers] == [{"by": name, "i": i} for i in range(40)]
        assert store.load_conversation(cid).title in ("renamed by alpha", "renamed by beta")
        assert store.load_draft(cid) in ("alpha draft 39", "beta draft 39")
        assert len(store.search("alpha", limit=500)) == 80  # user turns and answers, all indexed


def test_no_api_key_or_header_is_stored_or_exported(tmp_path, monkeypatch, fake_server):
    """A whole session with a key set: the key and a secret header never reach the file or an export."""
    import asyncio

    from taskdiv_chat.backends.openai import OpenAIBackend
    from taskdiv_chat.config import BackendConfig
    from tests.support.fake_server import Reply

    key, header_secret = "sk-live-Q7zR9wMk2xT4pL8v", "hdr-Zq81Lm4Nw7Ty"
    monkeypatch.setenv("OPENAI_API_KEY", key)
    fake_server.api_key = key
    # A misbehaving proxy that echoes the Authorization header into the answer.
    fake_server.responder = lambda body: Reply(
        f"Your header was {fake_server.headers[-1]['authorization']} and the end", chunk_delay=0.01)
    cfg = BackendConfig(base_url=fake_server.base_url, model="test-model", api_key_env="OPENAI_API_KEY",
                        headers={"X-Org-Token": header_secret}, read_timeout=5, connect_timeout=2, max_retries=0)
    backend = OpenAIBackend("openai", cfg)
    path = tmp_path / "chat.sqlite3"
    store = Store(path, secrets=tuple(cfg.headers.values()))
    cid = store.create_conversation(f"about {key}")
    turn = store.add_user_turn(cid, f"is my key {key} safe? header {header_secret}", None,
                               {"letter": "H", "method": "llm", "detail": f"raw: {key}"})

    async def run():
        writer = store.start_variant(turn, strategy="temperature", backend="openai", model="test-model",
                                     params=cfg.model_dump() | {"api_key": key})
        async for chunk in backend.stream([{"role": "user", "content": "hi"}]):
            writer.append(chunk.text)
            writer.flush()
        writer.finish("error", {"prompt_tokens": 1, "authorization": f"Bearer {key}"},
                      {"total_s": 0.1}, error=f"401 for Bearer {key}")
        await backend.aclose()
        return writer.variant_id

    variant_id = asyncio.run(run())
    store.save_metrics(variant_id, {"note": f"judge saw {key}", "headers": {"Authorization": key}})
    store.save_draft(cid, f"draft {key}")
    store.set_category(turn, {"letter": "H", "detail": f"{header_secret}"})
    variant = store.load_conversation(cid).turns[0].active
    assert variant.text.startswith("Your header was Bearer [redacted]") and variant.text.endswith("and the end")
    assert "api_key" not in variant.params and "headers" not in variant.params
    assert variant.params["api_key_env"] == "OPENAI_API_KEY"  # the variable's name is fine, not its value
    exports = [store.export_markdown(cid), json.dumps(store.export_json(cid))]
    files_while_open = {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.name.startswith("chat.sqlite3")}
    store.close()
    files_after = {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.name.startswith("chat.sqlite3")}
    assert "chat.sqlite3-wal" in files_while_open
    needles = [key, header_secret, "q7zr9wmk2xt4pl8v", "zq81lm4nw7ty"]  # also as the search index lowercases
    for name, blob in {**files_while_open, **{"closed " + k: v for k, v in files_after.items()}}.items():
        for needle in needles:
            assert needle.encode() not in blob, (name, needle)
    for text in exports:
        for needle in needles:
            assert needle not in text
    assert "[redacted]" in exports[0]


def test_ordinary_header_values_stay_in_the_users_text_secret_ones_do_not(tmp_path, monkeypatch):
    """OpenRouter's HTTP-Referer / X-Title hold ordinary words; only credential headers and keys are secrets."""
    from taskdiv_chat.config import BackendConfig, Settings

    key, token = "sk-or-Q7zR9wMk2xT4pL8v", "tok-Zq81Lm4Nw7Ty"
    monkeypatch.setenv("OPENROUTER_API_KEY", key)
    settings = Settings(backends={"openrouter": BackendConfig(
        base_url="https://openrouter.ai/api/v1", model="m", api_key_env="OPENROUTER_API_KEY",
        headers={"HTTP-Referer": "https://example.org", "X-Title": "taskdiv-chat", "X-Api-Token": token})})
    store = Store(tmp_path / "chat.sqlite3", secrets=settings.secret_values())
    cid = store.create_conversation("config help")
    question = f"How do I configure taskdiv-chat for https://example.org? My token is {token}, key {key}"
    turn = store.add_user_turn(cid, question, None)
    writer = store.start_variant(turn, strategy="temperature", backend="openrouter", model="m", params={})
    writer.append("Set X-Title to taskdiv-chat and HTTP-Referer to https://example.org.")
    writer.finish("stop")
    stored = store.load_conversation(cid).turns[0]
    store.close()
    assert stored.user.text == ("How do I configure taskdiv-chat for https://example.org? "
                           "My token is [redacted], key [redacted]")
    assert stored.active.text == "Set X-Title to taskdiv-chat and HTTP-Referer to https://example.org."
