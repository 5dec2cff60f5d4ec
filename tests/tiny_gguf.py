"""Tiny, randomly initialised GGUF models, built offline, for tests against a real llama.cpp server.

Why: the workstation's VLM client must work against real OpenAI-compatible servers, not only
against our own loopback server (tests/loopback_vlm.py), which implements the protocol as we
read it. No model weights can be downloaded on the test machines, so this module writes models
itself: a real architecture that llama.cpp loads and runs ("llama": RMSNorm, RoPE attention,
SwiGLU MLP; 2 layers, hidden size 64; a GPT-2-style byte-level BPE vocabulary that can
tokenize any text; the ChatML chat template), with random weights from a fixed seed. Such a
model says nothing useful: what it proves is the protocol (chat messages and templates, the
grammar that llama.cpp builds from a JSON schema, log-probabilities, token limits, images
through a vision projector), not the model's skill. The files are written in well under a
second, are a few hundred kB, and are byte-for-byte the same for the same seed.

One deliberate, non-random part: the last layer's MLP bias writes a large constant into one
residual channel, and the output matrix's column for that channel gives each token a fixed
logit offset (`_logit_offsets`). That keeps a greedy (temperature 0) decode of random weights
from running on forever inside a JSON string: the closing quote and brace are preferred,
and bytes that would make invalid UTF-8, control characters and the special tokens are
suppressed. The offsets alone do not make JSON: free text is a string of quoted words such as
`" the" normal" tile`, chosen among by the random weights; the grammar makes the JSON.

`build_tiny_mmproj` writes a matching vision projector (a CLIP-style ViT with an MLP projector,
as for LLaVA-1.5) that llama.cpp's multimodal library (libmtmd) loads, so image parts go
through a real image encoder into the language model.

The GGUF container (v3) is written here directly (`write_gguf`), so the `gguf` package is not
needed (its reader, gguf 0.19.0, reads these files back).

The server (tests/test_real_server.py) needs llama-cpp-python, which compiles llama.cpp on
install (tested: 0.3.36, about 9 minutes on 2 cores; gcc/g++ and cmake >= 3.21 needed):

    CMAKE_ARGS="-DGGML_NATIVE=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF \
        -DLLAMA_BUILD_TOOLS=OFF -DLLAMA_BUILD_SERVER=OFF -DLLAMA_OPENSSL=OFF" \
        pip install "llama-cpp-python[server]==0.3.36"

GGML_NATIVE=OFF builds for a portable x86-64 baseline (AVX2/FMA/F16C) instead of the build
machine's CPU, so a cached wheel also runs elsewhere.
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any

import numpy as np

# -- GGUF container -------------------------------------------------------------------------

GGUF_MAGIC = b"GGUF"
GGUF_VERSION = 3
ALIGNMENT = 32
_U32, _I32, _F32, _BOOL, _STRING, _ARRAY, _U64 = 4, 5, 6, 7, 8, 9, 10
_GGML_F32 = 0


def _string(text: str) -> bytes:
    data = text.encode("utf-8")
    return struct.pack("<Q", len(data)) + data


def _value(kind: int, value: Any) -> bytes:
    if kind == _U32:
        return struct.pack("<I", value)
    if kind == _I32:
        return struct.pack("<i", value)
    if kind == _F32:
        return struct.pack("<f", value)
    if kind == _BOOL:
        return struct.pack("<?", value)
    if kind == _U64:
        return struct.pack("<Q", value)
    if kind == _STRING:
        return _string(value)
    raise ValueError(f"unsupported GGUF value type {kind}")


def _kv(key: str, value: Any) -> bytes:
    """One metadata entry; the GGUF type follows from the Python type (lists: of one type)."""
    if isinstance(value, np.ndarray):  # typed numeric arrays: int32 or float32
        kind = {np.dtype(np.int32): _I32, np.dtype(np.float32): _F32}[value.dtype]
        body = struct.pack("<IQ", kind, len(value)) + value.astype(value.dtype.newbyteorder("<")).tobytes()
        return _string(key) + struct.pack("<I", _ARRAY) + body
    if isinstance(value, list):
        kind = _element_kind(value[0])
        body = struct.pack("<IQ", kind, len(value)) + b"".join(_value(kind, v) for v in value)
        return _string(key) + struct.pack("<I", _ARRAY) + body
    kind = _element_kind(value)
    return _string(key) + struct.pack("<I", kind) + _value(kind, value)


def _element_kind(value: Any) -> int:
    if isinstance(value, bool):
        return _BOOL
    if isinstance(value, int):
        return _U32 if value >= 0 else _I32
    if isinstance(value, float):
        return _F32
    if isinstance(value, str):
        return _STRING
    raise TypeError(f"no GGUF type for {type(value).__name__}")


def write_gguf(path: str | Path, metadata: dict[str, Any], tensors: dict[str, np.ndarray]) -> Path:
    """Write a GGUF v3 file: metadata, then float32 tensors (numpy shape (rows, cols) = ggml ne [cols, rows])."""
    path = Path(path)
    header = bytearray(GGUF_MAGIC + struct.pack("<IQQ", GGUF_VERSION, len(tensors), len(metadata)))
    for key, value in metadata.items():
        header += _kv(key, value)
    blobs: list[bytes] = []
    offset = 0
    for name, array in tensors.items():
        data = np.ascontiguousarray(array, dtype="<f4").tobytes()
        dims = array.shape[::-1]
        header += _string(name) + struct.pack("<I", len(dims)) + struct.pack(f"<{len(dims)}Q", *dims)
        header += struct.pack("<IQ", _GGML_F32, offset)
        padded = data + b"\0" * (-len(data) % ALIGNMENT)
        blobs.append(padded)
        offset += len(padded)
    header += b"\0" * (-len(header) % ALIGNMENT)
    path.write_bytes(bytes(header) + b"".join(blobs))
    return path


# -- vocabulary -----------------------------------------------------------------------------

CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' }}"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for part in message['content'] %}"
    "{% if part['type'] == 'text' %}{{ part['text'] }}{% endif %}"
    "{% endfor %}{% endif %}"
    "{{ '<|im_end|>\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
"""ChatML, reading string content and the text parts of a content list (image parts are left to
the server: a text-only server drops them; the multimodal handler replaces them by its marker)."""

SPECIAL_TOKENS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")
# multi-byte tokens, so that tokens and characters differ as with real tokenizers ("Ġ" = space)
_WORDS = (
    "true",
    "false",
    "null",
    "anomalous",
    "confidence",
    "reason",
    "Ġthe",
    "Ġnormal",
    "Ġimage",
    "Ġdefect",
    "ing",
    "ion",
)
# Free-text favourites: a quote then a word. In none of our JSON's positions is such a token valid
# (except to open a string), so under the grammar the plain quote and brace win instead.
FREE_TEXT_TOKENS = ('"Ġnormal', '"Ġthe', '"Ġimage', '"Ġdefect', '"Ġis', '"Ġok', '"Ġtile')
_NORMAL, _CONTROL = 1, 3


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2's reversible byte → printable character map (what byte-level BPE vocabularies store)."""
    keep = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    mapping = {b: chr(b) for b in keep}
    extra = 0
    for b in range(256):
        if b not in mapping:
            mapping[b] = chr(256 + extra)
            extra += 1
    return mapping


def tiny_vocab() -> tuple[list[str], list[int], list[str]]:
    """Tokens, token types and BPE merges: all 256 bytes, a few merged words, ChatML specials."""
    byte_chars = _bytes_to_unicode()
    tokens = [byte_chars[b] for b in range(256)]
    merges: list[str] = []
    for word in _WORDS:
        prefix = word[0]
        for char in word[1:]:
            merged = prefix + char
            if merged not in tokens:
                merges.append(f"{prefix} {char}")
                tokens.append(merged)
            prefix = merged
    tokens += FREE_TEXT_TOKENS  # no merges lead to them: generated, never produced by tokenizing
    types = [_NORMAL] * len(tokens)
    tokens += SPECIAL_TOKENS
    types += [_CONTROL] * len(SPECIAL_TOKENS)
    return tokens, types, merges


def _logit_offsets(tokens: list[str]) -> np.ndarray:
    """Fixed per-token logit offsets (see the module docstring); 0 for ordinary printable tokens."""
    unicode_to_byte = {c: b for b, c in _bytes_to_unicode().items()}
    offsets = np.zeros(len(tokens), dtype=np.float64)
    preferred = {'"': 12.0, "}": 9.0, ",": 6.0, "0": 3.0}
    preferred.update({t.replace("Ġ", " "): 16.0 for t in FREE_TEXT_TOKENS})
    for i, token in enumerate(tokens):
        if token in SPECIAL_TOKENS:
            offsets[i] = -30.0
            continue
        raw = bytes(unicode_to_byte[c] for c in token)
        if any(b < 0x20 or b >= 0x7F for b in raw):
            offsets[i] = -30.0  # control characters and lone UTF-8 bytes
        else:
            offsets[i] = preferred.get(raw.decode("ascii"), 0.0)
    return offsets


# -- models ---------------------------------------------------------------------------------

N_EMBD = 64
N_LAYER = 2
N_HEAD = 4
N_FF = 128
N_CTX = 4096
_BIAS_CHANNEL = 0
_BIAS_VALUE = 30.0
_NOISE = 0.3  # scale of the random output weights: logit noise of roughly 1, below the offsets' steps


def build_tiny_llama(path: str | Path, seed: int = 0) -> Path:
    """Write a 2-layer "llama" model with random weights and the byte-level vocabulary; returns the path."""
    rng = np.random.default_rng(seed)
    tokens, types, merges = tiny_vocab()
    n_vocab = len(tokens)

    def rand(*shape: int, scale: float = 1.0) -> np.ndarray:
        return (rng.standard_normal(shape) * scale).astype(np.float32)

    tensors: dict[str, np.ndarray] = {"token_embd.weight": rand(n_vocab, N_EMBD)}
    for i in range(N_LAYER):
        wscale = 1.0 / np.sqrt(N_EMBD)
        tensors.update(
            {
                f"blk.{i}.attn_norm.weight": np.ones(N_EMBD, np.float32),
                f"blk.{i}.attn_q.weight": rand(N_EMBD, N_EMBD, scale=wscale),
                f"blk.{i}.attn_k.weight": rand(N_EMBD, N_EMBD, scale=wscale),
                f"blk.{i}.attn_v.weight": rand(N_EMBD, N_EMBD, scale=wscale),
                f"blk.{i}.attn_output.weight": rand(N_EMBD, N_EMBD, scale=wscale),
                f"blk.{i}.ffn_norm.weight": np.ones(N_EMBD, np.float32),
                f"blk.{i}.ffn_gate.weight": rand(N_FF, N_EMBD, scale=wscale),
                f"blk.{i}.ffn_up.weight": rand(N_FF, N_EMBD, scale=wscale),
                f"blk.{i}.ffn_down.weight": rand(N_EMBD, N_FF, scale=1.0 / np.sqrt(N_FF)),
            }
        )
    # the fixed logit offsets: a constant residual channel, read by the output matrix
    bias = np.zeros(N_EMBD, np.float32)
    bias[_BIAS_CHANNEL] = _BIAS_VALUE
    tensors[f"blk.{N_LAYER - 1}.ffn_down.bias"] = bias
    tensors["output_norm.weight"] = np.ones(N_EMBD, np.float32)
    output = rand(n_vocab, N_EMBD, scale=_NOISE)
    # after the final RMSNorm the constant channel is close to sqrt(N_EMBD)
    output[:, _BIAS_CHANNEL] = (_logit_offsets(tokens) / np.sqrt(N_EMBD)).astype(np.float32)
    tensors["output.weight"] = output

    metadata: dict[str, Any] = {
        "general.architecture": "llama",
        "general.name": f"tiny-random-llama-seed{seed}",
        "general.alignment": ALIGNMENT,
        "llama.context_length": N_CTX,
        "llama.embedding_length": N_EMBD,
        "llama.block_count": N_LAYER,
        "llama.feed_forward_length": N_FF,
        "llama.attention.head_count": N_HEAD,
        "llama.attention.head_count_kv": N_HEAD,
        "llama.attention.layer_norm_rms_epsilon": 1e-5,
        "llama.rope.dimension_count": N_EMBD // N_HEAD,
        "llama.rope.freq_base": 10000.0,
        "llama.vocab_size": n_vocab,
        "tokenizer.ggml.model": "gpt2",
        "tokenizer.ggml.pre": "default",
        "tokenizer.ggml.tokens": tokens,
        "tokenizer.ggml.token_type": np.array(types, dtype=np.int32),
        "tokenizer.ggml.merges": merges,
        "tokenizer.ggml.bos_token_id": tokens.index("<|endoftext|>"),
        "tokenizer.ggml.eos_token_id": tokens.index("<|im_end|>"),
        "tokenizer.ggml.padding_token_id": tokens.index("<|endoftext|>"),
        "tokenizer.ggml.add_bos_token": False,
        "tokenizer.chat_template": CHATML_TEMPLATE,
    }
    return write_gguf(path, metadata, tensors)


# vision tower: image 56x56 in 14x14 patches, i.e. 16 image tokens per image
V_IMAGE = 56
V_PATCH = 14
V_EMBD = 32
V_FF = 48  # must differ from V_EMBD (llama.cpp swaps up/down of legacy LLaVA files where they match)
V_HEAD = 2
V_LAYER = 2
V_PROJ = 64
IMAGE_TOKENS = (V_IMAGE // V_PATCH) ** 2


def build_tiny_mmproj(path: str | Path, seed: int = 1) -> Path:
    """Write a LLaVA-1.5-style vision projector ("clip", projector type "mlp") for `build_tiny_llama`.

    A CLIP ViT (patch embedding, position embedding, pre-norm blocks with biases, GELU MLP) and the
    two-layer MLP projector into the language model's 64-dim embedding space, all random.
    """
    rng = np.random.default_rng(seed)

    def rand(*shape: int, scale: float = 0.02) -> np.ndarray:
        return (rng.standard_normal(shape) * scale).astype(np.float32)

    def ones(n: int) -> np.ndarray:
        return np.ones(n, np.float32)

    def zeros(n: int) -> np.ndarray:
        return np.zeros(n, np.float32)

    n_pos = IMAGE_TOKENS
    tensors: dict[str, np.ndarray] = {
        "v.patch_embd.weight": rand(V_EMBD, 3, V_PATCH, V_PATCH),  # ggml ne [kw, kh, channels, out]
        "v.position_embd.weight": rand(n_pos, V_EMBD),
        "v.pre_ln.weight": ones(V_EMBD),
        "v.pre_ln.bias": zeros(V_EMBD),
    }
    for i in range(V_LAYER):
        for name in ("attn_q", "attn_k", "attn_v", "attn_out"):
            tensors[f"v.blk.{i}.{name}.weight"] = rand(V_EMBD, V_EMBD)
            tensors[f"v.blk.{i}.{name}.bias"] = zeros(V_EMBD)
        tensors.update(
            {
                f"v.blk.{i}.ln1.weight": ones(V_EMBD),
                f"v.blk.{i}.ln1.bias": zeros(V_EMBD),
                f"v.blk.{i}.ln2.weight": ones(V_EMBD),
                f"v.blk.{i}.ln2.bias": zeros(V_EMBD),
                f"v.blk.{i}.ffn_up.weight": rand(V_FF, V_EMBD),
                f"v.blk.{i}.ffn_up.bias": zeros(V_FF),
                f"v.blk.{i}.ffn_down.weight": rand(V_EMBD, V_FF),
                f"v.blk.{i}.ffn_down.bias": zeros(V_EMBD),
            }
        )
    tensors.update(
        {
            "mm.0.weight": rand(V_PROJ, V_EMBD),
            "mm.0.bias": zeros(V_PROJ),
            "mm.2.weight": rand(N_EMBD, V_PROJ),
            "mm.2.bias": zeros(N_EMBD),
        }
    )
    metadata: dict[str, Any] = {
        "general.architecture": "clip",
        "general.name": f"tiny-random-clip-seed{seed}",
        "general.alignment": ALIGNMENT,
        "clip.has_vision_encoder": True,
        "clip.has_text_encoder": False,
        "clip.projector_type": "mlp",
        "clip.use_gelu": True,
        "clip.vision.image_size": V_IMAGE,
        "clip.vision.patch_size": V_PATCH,
        "clip.vision.embedding_length": V_EMBD,
        "clip.vision.feed_forward_length": V_FF,
        "clip.vision.block_count": V_LAYER,
        "clip.vision.projection_dim": V_PROJ,
        "clip.vision.attention.head_count": V_HEAD,
        "clip.vision.attention.layer_norm_epsilon": 1e-6,
        "clip.vision.image_mean": np.array([0.48145466, 0.4578275, 0.40821073], np.float32),
        "clip.vision.image_std": np.array([0.26862954, 0.26130258, 0.27577711], np.float32),
    }
    return write_gguf(path, metadata, tensors)


if __name__ == "__main__":
    import sys

    folder = Path(sys.argv[1] if len(sys.argv) > 1 else ".")
    for out in (build_tiny_llama(folder / "tiny-llama.gguf"), build_tiny_mmproj(folder / "tiny-mmproj.gguf")):
        print(out, out.stat().st_size, "bytes")
