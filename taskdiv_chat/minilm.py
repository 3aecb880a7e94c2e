"""all-MiniLM-L6-v2 in plain numpy: the BERT encoder's forward pass, mean pooling, unit length.

Gives sentence-transformers' vectors (cosine 1.000, checked by tests/test_embeddings.py)
without importing torch: loading takes ~0.3 s and ~100 MB instead of ~7 s and ~500 MB.
The weights are memory-mapped from model.safetensors (of the 47 MB word-embedding table only
the rows of tokens actually seen are read) and from a cached copy of the layers' matrices in
the layout the matrix products want.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
from pathlib import Path

import numpy as np

MAX_TOKENS = 256  # sentence-transformers' max_seq_length for this model (sentence_bert_config.json)
BATCH_TOKENS = 4096  # padded tokens per forward pass: keeps the attention scores small
LAYOUT = 1  # of the cached weight file; a change here makes a new file


def _safetensors(path: Path) -> dict[str, np.ndarray]:
    """Every tensor of a .safetensors file as a read-only memory-mapped array.

    The format is an 8-byte little-endian header length, a JSON header giving each tensor's
    dtype, shape and byte range, then the raw data."""
    dtypes = {"F32": np.float32, "F16": np.float16, "I64": np.int64}
    with path.open("rb") as f:
        size = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(size))
    data = np.asarray(np.memmap(path, dtype=np.uint8, mode="r", offset=8 + size))
    tensors = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        start, end = info["data_offsets"]
        tensors[name] = data[start:end].view(dtypes[info["dtype"]]).reshape(info["shape"])
    return tensors


def _layer_norm(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, eps: float) -> np.ndarray:
    """Over the last axis; x is overwritten."""
    x -= x.mean(-1, keepdims=True)
    x /= np.sqrt(np.square(x).mean(-1, keepdims=True) + eps)
    x *= weight
    x += bias
    return x


def _gelu(x: np.ndarray) -> np.ndarray:
    """BERT's exact GELU, x * Phi(x), computed in place (x is overwritten): on these machines
    each temporary array of a long batch costs more than the arithmetic.

    erf comes from Abramowitz & Stegun 7.1.26 (error < 1.5e-7, below float32's precision
    here); numpy has no erf and scipy.special is both slower and a 0.7 s import."""
    z = np.abs(x)
    z *= np.float32(1 / np.sqrt(2))
    t = z * np.float32(0.3275911)
    t += 1
    np.reciprocal(t, out=t)
    p = t * np.float32(1.061405429)
    for a in (-1.453152027, 1.421413741, -0.284496736, 0.254829592):
        p += np.float32(a)
        p *= t
    np.square(z, out=z)
    np.negative(z, out=z)
    np.exp(z, out=z)
    p *= z  # p = 1 - erf(|x| / sqrt 2)
    # Phi(x) = 1 - p/2 for x >= 0, and p/2 for x < 0
    p *= np.float32(0.5)
    np.copysign(p, x, out=p)
    np.negative(p, out=p)
    p += x >= 0
    x *= p
    return x


# The weight matrices of a layer, each as the concatenation of these tensors.
GROUPS = {"qkv": ("attention.self.query", "attention.self.key", "attention.self.value"),  # one product for all three
          "out": ("attention.output.dense",), "up": ("intermediate.dense",), "down": ("output.dense",)}


def _matrices(w: dict[str, np.ndarray], layers: int, cache_file: Path | None) -> dict[tuple[int, str], np.ndarray]:
    """Every layer's weight matrices as contiguous (inputs, outputs) arrays: a third faster for a
    prompt's few rows than the file's (outputs, inputs) layout. Transposing them costs ~0.15 s
    at each start, so they are written once to `cache_file` and memory-mapped from it after."""
    keys = [(i, group) for i in range(layers) for group in GROUPS]
    parts = {(i, g): [w[f"encoder.layer.{i}.{name}.weight"] for name in GROUPS[g]] for i, g in keys}
    shapes = {k: (parts[k][0].shape[1], sum(t.shape[0] for t in parts[k])) for k in keys}
    size = sum(a * b for a, b in shapes.values())
    flat = None
    if cache_file is not None:
        try:
            flat = np.load(cache_file, mmap_mode="r")
        except (OSError, ValueError):  # not there yet, or damaged: made again below
            pass
    if flat is None or flat.shape != (size,) or flat.dtype != np.float32:
        flat = np.concatenate([np.concatenate(parts[k]).T.ravel() for k in keys])
        if cache_file is not None:
            try:
                cache_file.parent.mkdir(parents=True, exist_ok=True)
                tmp = cache_file.with_name(f".{cache_file.name}.{os.getpid()}.tmp")
                with tmp.open("wb") as f:
                    np.save(f, flat)
                tmp.replace(cache_file)
                for stale in cache_file.parent.glob("minilm-*.npy"):  # an older model's (~40 MB each)
                    if stale != cache_file:
                        stale.unlink(missing_ok=True)
            except OSError:  # a read-only cache only costs the transposing again
                pass
    out, start = {}, 0
    for k in keys:
        a, b = shapes[k]
        out[k] = flat[start:start + a * b].reshape(a, b)
        start += a * b
    return out


class _Layer:
    def __init__(self, w: dict[str, np.ndarray], matrices: dict[tuple[int, str], np.ndarray], index: int,
                 heads: int):
        prefix = f"encoder.layer.{index}"

        def bias(group: str) -> np.ndarray:
            return np.concatenate([w[f"{prefix}.{name}.bias"] for name in GROUPS[group]])

        def norm(name: str) -> tuple[np.ndarray, np.ndarray]:
            return w[f"{prefix}.{name}.weight"], w[f"{prefix}.{name}.bias"]

        self.qkv_w, self.qkv_b = matrices[index, "qkv"], bias("qkv")
        self.out_w, self.out_b = matrices[index, "out"], bias("out")
        self.ln1 = norm("attention.output.LayerNorm")
        self.up_w, self.up_b = matrices[index, "up"], bias("up")
        self.down_w, self.down_b = matrices[index, "down"], bias("down")
        self.ln2 = norm("output.LayerNorm")
        self.heads = heads

    def __call__(self, x: np.ndarray, key_mask: np.ndarray, eps: float) -> np.ndarray:
        """x: (batch, tokens, hidden); key_mask: (batch, 1, 1, tokens), 0 or a large negative for padding."""
        b, n, hidden = x.shape
        d = hidden // self.heads
        flat = x.reshape(b * n, hidden)
        qkv = flat @ self.qkv_w
        qkv += self.qkv_b
        q, k, v = qkv.reshape(b, n, 3, self.heads, d).transpose(2, 0, 3, 1, 4)  # each (batch, heads, tokens, d)
        scores = q @ k.transpose(0, 1, 3, 2)
        scores *= np.float32(1 / np.sqrt(d))
        scores += key_mask
        scores -= scores.max(-1, keepdims=True)
        np.exp(scores, out=scores)
        scores /= scores.sum(-1, keepdims=True)
        attended = (scores @ v).transpose(0, 2, 1, 3).reshape(b * n, hidden) @ self.out_w
        attended += self.out_b
        attended += flat
        attended = _layer_norm(attended, *self.ln1, eps)
        up = attended @ self.up_w
        up += self.up_b
        out = _gelu(up) @ self.down_w
        out += self.down_b
        out += attended
        return _layer_norm(out, *self.ln2, eps).reshape(b, n, hidden)


class MiniLM:
    """The sentence encoder; `encode(texts)` gives unit float32 vectors. Not thread-safe
    (the tokenizer refuses concurrent use): embeddings.embed serialises the calls."""

    def __init__(self, folder: str | Path, cache: str | Path | None = None):
        """folder: the model (config.json, tokenizer.json, model.safetensors); cache: a folder for the
        weights in the layout used here (None: transposed at every load)."""
        from tokenizers import Tokenizer

        folder = Path(folder)
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
        self.eps = float(config["layer_norm_eps"])
        self.dimension = int(config["hidden_size"])
        self.tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        # tokenizer.json pads every input to 128 tokens and cuts at 128; sentence-transformers
        # pads per batch (to the longest) and cuts at 256. Padding is done here, with a mask.
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(MAX_TOKENS)
        weights = folder / "model.safetensors"
        w = _safetensors(weights)
        self.word = w["embeddings.word_embeddings.weight"]
        self.position = w["embeddings.position_embeddings.weight"]
        self.token_type = np.array(w["embeddings.token_type_embeddings.weight"][0])
        self.ln = w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"]
        heads, layers = int(config["num_attention_heads"]), int(config["num_hidden_layers"])
        cache_file = None
        if cache is not None:  # named after the weights file it was made from: a new model makes a new one
            stat = weights.stat()
            key = hashlib.sha256(f"{LAYOUT}|{weights.resolve()}|{stat.st_size}|{stat.st_mtime_ns}".encode())
            cache_file = Path(cache) / f"minilm-{key.hexdigest()[:16]}.npy"
        matrices = _matrices(w, layers, cache_file)
        self.layers = [_Layer(w, matrices, i, heads) for i in range(layers)]

    def encode(self, texts: list[str]) -> np.ndarray:
        """Unit vectors, one row per text, in order. Texts are batched by similar length so
        little padding is computed."""
        ids = [e.ids for e in self.tokenizer.encode_batch(list(texts))]
        out = np.empty((len(ids), self.dimension), dtype=np.float32)
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
        start = 0
        while start < len(order):
            end = start + 1
            while end < len(order) and len(ids[order[end]]) * (end + 1 - start) <= BATCH_TOKENS:
                end += 1
            batch = order[start:end]
            out[batch] = self._forward([ids[i] for i in batch])
            start = end
        return out

    def _forward(self, batch: list[list[int]]) -> np.ndarray:
        n = max(len(ids) for ids in batch)
        tokens = np.zeros((len(batch), n), dtype=np.int64)
        mask = np.zeros((len(batch), n), dtype=np.float32)
        for row, ids in enumerate(batch):
            tokens[row, :len(ids)] = ids
            mask[row, :len(ids)] = 1
        x = self.word[tokens] + self.position[:n] + self.token_type
        x = _layer_norm(x, *self.ln, self.eps)
        key_mask = ((1 - mask) * np.finfo(np.float32).min)[:, None, None, :]
        for layer in self.layers:
            x = layer(x, key_mask, self.eps)
        pooled = (x * mask[:, :, None]).sum(1) / np.maximum(mask.sum(1, keepdims=True), 1e-9)
        return pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)
