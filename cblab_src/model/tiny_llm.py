"""TinyLLM: a genuine decoder-only transformer in numpy, small enough to read in one sitting.

Token embedding + sinusoidal position encoding (from each token's position in *its own*
sequence) -> ``n_layers`` x [pre-norm multi-head causal attention + pre-norm MLP, each with a
residual] -> final norm -> LM head. ``TinyLLM()`` has random (seeded) weights: it writes
nonsense, but every number it computes is the number a trained model's arithmetic would
compute, which is all the batching machinery can see. ``TinyLLM.pretrained()`` loads weights
trained on the course's own English corpus, with a character tokenizer, so requests are text
in and text out (see :mod:`cblab_src.model.pretrained`).

Two ways to run it:

* :meth:`TinyLLM.forward_prefill_dense` — one sequence, no cache, plain causal attention.
  :meth:`TinyLLM.generate` uses only this path, recomputing the whole sequence for each new
  token: slow, obviously correct, and the reference every batched run is checked against.
* :meth:`TinyLLM.forward_step` — one scheduler step: a ragged batch of prefill chunks and
  decode tokens from many requests, reading and writing a KV cache (dense or paged). Each
  weight is applied with ONE matmul over all tokens of the step: that is what makes batching
  pay off on real hardware. With a paged cache, the decode tokens' attention is batched too
  (one gather and one einsum for all of them), as a paged-attention kernel does.

Its parts are in :mod:`cblab_src.model.layers` (weights, layer norm, GELU, position codes) and
:mod:`cblab_src.model.step_layout` (how one step's tokens meet the KV cache, in every layer).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict
from pathlib import Path

import numpy as np

from .._validate import non_negative_int, positive_int, token_ids
from ..attention.dense_attention import causal_mask, masked_attention
from ..attention.paged_attention import decode_workspace_size
from ..attention.ragged_attention import AttentionFn, segmented_attention
from .checkpoint import MODEL_DIR, ModelCard, read_weights
from .layers import (LAYER_WEIGHT_NAMES, WEIGHT_NAMES, LayerWeights, PrefillOutput, gelu,
                     layer_norm, sinusoidal_positions)
from .sampling import GREEDY, SamplingParams, apply_logits_processors, sample_token
from .step_layout import StepLayout
from .tokenizer import CharTokenizer


class TinyLLM:
    """A decoder-only transformer: seeded random weights by default, or given ``weights``.

    ``weights`` maps the names of :meth:`weight_arrays` to arrays of the right shapes (they are
    cast to ``dtype``); ``tokenizer`` (optional) turns text into this model's ids and back.
    The defaults run a chapter in seconds.

    ``dtype`` is np.float64 (default) or np.float32, the dtypes in which a batched run gives
    every request exactly the tokens of :meth:`generate`. np.float16 breaks that guarantee and
    is refused unless ``allow_batch_variance=True`` (the documented opt-in, to show the effect);
    an integer dtype is refused.
    """

    def __init__(self, seed: int = 0, vocab_size: int = 128, d_model: int = 64, n_layers: int = 2,
                 n_heads: int = 4, max_seq_len: int = 512, dtype=np.float64, *,
                 weights: Mapping[str, np.ndarray] | None = None, tokenizer=None,
                 allow_batch_variance: bool = False):
        from .._validate import model_dtype     # float16 is refused: see model_dtype
        dtype = model_dtype(dtype, allow_batch_variance=allow_batch_variance)
        self.seed = non_negative_int("seed", seed)
        self.vocab_size = positive_int("vocab_size", vocab_size)
        self.d_model = positive_int("d_model", d_model)
        self.n_layers = positive_int("n_layers", n_layers)
        self.n_heads = positive_int("n_heads", n_heads)
        self.max_seq_len = positive_int("max_seq_len", max_seq_len)
        if d_model % n_heads:
            raise ValueError(f"d_model must be divisible by n_heads, got d_model={d_model}, "
                             f"n_heads={n_heads}")
        self.head_dim = d_model // n_heads
        self.dtype = np.dtype(dtype)
        self.tokenizer = tokenizer
        if tokenizer is not None and tokenizer.vocab_size != vocab_size:
            raise ValueError(f"tokenizer has {tokenizer.vocab_size} ids but vocab_size is "
                             f"{vocab_size}")
        # Where the weights came from, for repr: "random" (seeded), "given", or "pretrained".
        self.weights_source = "random" if weights is None else "given"
        self.pos_emb = sinusoidal_positions(self.max_seq_len, d_model).astype(self.dtype)
        if weights is None:
            self._init_weights(np.random.default_rng(seed))
        else:
            self._load_weights(weights)

    def _init_weights(self, rng: np.random.Generator) -> None:
        d, f, cast = self.d_model, 4 * self.d_model, self.dtype.type

        def normal(*shape, scale):
            return (rng.standard_normal(shape) * scale).astype(self.dtype)

        self.tok_emb = normal(self.vocab_size, d, scale=1.0)
        self.layers = [
            LayerWeights(
                ln1_gain=np.ones(d, self.dtype), ln1_bias=np.zeros(d, self.dtype),
                w_qkv=normal(d, 3 * d, scale=d ** -0.5), w_out=normal(d, d, scale=d ** -0.5),
                ln2_gain=np.ones(d, self.dtype), ln2_bias=np.zeros(d, self.dtype),
                w_up=normal(d, f, scale=d ** -0.5), w_down=normal(f, d, scale=f ** -0.5),
            )
            for _ in range(self.n_layers)
        ]
        self.lnf_gain, self.lnf_bias = np.ones(d, self.dtype), np.zeros(d, self.dtype)
        # A larger LM-head scale spreads the logits, so greedy decoding wanders more.
        self.w_lm = normal(d, self.vocab_size, scale=cast(2.0) * d ** -0.5)

    def weight_shapes(self) -> dict[str, tuple[int, ...]]:
        """The name and shape of every trained array, in :meth:`weight_arrays` order."""
        d, f, v = self.d_model, 4 * self.d_model, self.vocab_size
        layer = {"ln1_gain": (d,), "ln1_bias": (d,), "w_qkv": (d, 3 * d), "w_out": (d, d),
                 "ln2_gain": (d,), "ln2_bias": (d,), "w_up": (d, f), "w_down": (f, d)}
        shapes = {"tok_emb": (v, d), "lnf_gain": (d,), "lnf_bias": (d,), "w_lm": (d, v)}
        for i in range(self.n_layers):
            shapes.update({f"layers.{i}.{name}": layer[name] for name in LAYER_WEIGHT_NAMES})
        return shapes

    def weight_arrays(self) -> dict[str, np.ndarray]:
        """Every trained array by name (``tok_emb``, ``layers.0.w_qkv``, ...): what a weights
        file holds. The position table is computed, not trained, so it is not among them."""
        arrays = {name: getattr(self, name) for name in WEIGHT_NAMES}
        for i, layer in enumerate(self.layers):
            arrays.update({f"layers.{i}.{name}": getattr(layer, name)
                           for name in LAYER_WEIGHT_NAMES})
        return arrays

    def _load_weights(self, weights: Mapping[str, np.ndarray]) -> None:
        shapes = self.weight_shapes()
        missing = sorted(set(shapes) - set(weights))
        extra = sorted(set(weights) - set(shapes))
        if missing or extra:
            raise ValueError(f"weights must hold exactly {len(shapes)} arrays; missing "
                             f"{missing}, unexpected {extra}")
        for name, shape in shapes.items():
            if np.shape(weights[name]) != shape:
                raise ValueError(f"weights[{name!r}] has shape {np.shape(weights[name])}, "
                                 f"expected {shape}")
        arr = {name: np.asarray(weights[name], dtype=self.dtype) for name in shapes}
        self.tok_emb, self.w_lm = arr["tok_emb"], arr["w_lm"]
        self.lnf_gain, self.lnf_bias = arr["lnf_gain"], arr["lnf_bias"]
        self.layers = [LayerWeights(**{name: arr[f"layers.{i}.{name}"]
                                       for name in LAYER_WEIGHT_NAMES})
                       for i in range(self.n_layers)]

    @classmethod
    def pretrained(cls, dtype=np.float64, *, model_dir: Path = MODEL_DIR) -> "TinyLLM":
        """The model trained on the course's English corpus, with its ``tokenizer``.

        Loads the weights shipped in ``cblab_src/data/tiny_llm/`` (see
        :mod:`cblab_src.model.pretrained` for how they were trained and what they score), or
        those of another ``model_dir`` holding the same two files (see
        :mod:`cblab_src.model.checkpoint`).
        """
        card = ModelCard.load(Path(model_dir) / "card.json")
        model = cls(seed=card.training.seed, dtype=dtype, weights=read_weights(model_dir),
                    tokenizer=CharTokenizer(), **asdict(card.config))
        model.weights_source = "pretrained"
        return model

    def __repr__(self) -> str:
        shape = (f"vocab_size={self.vocab_size}, d_model={self.d_model}, "
                 f"n_layers={self.n_layers}, n_heads={self.n_heads}, "
                 f"max_seq_len={self.max_seq_len}, dtype={self.dtype.name})")
        if self.weights_source == "pretrained":
            return f"TinyLLM.pretrained({shape}"
        if self.weights_source == "given":
            return f"TinyLLM(weights=<given>, {shape}"
        return f"TinyLLM(seed={self.seed}, {shape}"

    # ------------------------------------------------------------------ shared pieces
    def embed(self, tokens: np.ndarray, positions: np.ndarray) -> np.ndarray:
        """``(N,)`` token ids and positions -> ``(N, d)`` input vectors."""
        return self.tok_emb[tokens] + self.pos_emb[positions]

    def qkv(self, layer: LayerWeights, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Pre-norm and project ``x (N, d)`` to ``q, k, v``, each ``(N, H, D)``."""
        h = layer_norm(x, layer.ln1_gain, layer.ln1_bias) @ layer.w_qkv     # (N, 3d)
        q, k, v = np.split(h, 3, axis=-1)
        shape = (x.shape[0], self.n_heads, self.head_dim)
        return q.reshape(shape), k.reshape(shape), v.reshape(shape)

    def finish_layer(self, layer: LayerWeights, x: np.ndarray, attn: np.ndarray) -> np.ndarray:
        """Output projection + residual, then the MLP block + residual. ``x, attn``: (N, d)."""
        x = x + attn @ layer.w_out
        h = layer_norm(x, layer.ln2_gain, layer.ln2_bias)
        return x + gelu(h @ layer.w_up) @ layer.w_down

    def lm_head(self, x: np.ndarray) -> np.ndarray:
        """Final norm and vocabulary projection: ``(N, d) -> (N, vocab)``."""
        return layer_norm(x, self.lnf_gain, self.lnf_bias) @ self.w_lm

    # ------------------------------------------------------------------ phase 1: dense prefill
    def forward_prefill_dense(self, tokens: Sequence[int],
                              attend: AttentionFn = masked_attention) -> PrefillOutput:
        """Run one whole sequence with plain causal attention and no cache.

        Returns the logits of every position and the K/V every layer would cache, so
        ``forward_prefill_dense(prompt).num_computed_tokens == len(prompt)``.
        """
        ids = np.asarray(self.check_tokens("tokens", tokens))
        if len(ids) > self.max_seq_len:
            raise ValueError(f"tokens has length {len(ids)} > max_seq_len {self.max_seq_len}")
        x = self.embed(ids, np.arange(len(ids)))
        keys, values = [], []
        for layer in self.layers:
            q, k, v = self.qkv(layer, x)
            attn = attend(q, k, v, causal_mask(len(ids)))                  # (T, H, D)
            x = self.finish_layer(layer, x, attn.reshape(len(ids), -1))
            keys.append(k)
            values.append(v)
        return PrefillOutput(self.lm_head(x), keys, values)

    # ------------------------------------------------------------------ a scheduler step
    def forward_step(self, batch, cache, attend: AttentionFn = masked_attention) -> np.ndarray:
        """Run one ragged step against a KV cache; return logits of the sampling segments.

        ``batch`` is a :class:`~cblab_src.core.batch_builder.RaggedBatch` whose segments the
        cache has already been extended for (the scheduler owns memory). For every layer the
        new K/V are written to the cache, then each segment attends over its request's whole
        cached context. Returns ``(S, vocab)`` logits, one row per segment with ``samples``.

        With the default attention, the step's layout is worked out once (:class:`StepLayout`)
        and every layer runs the attention of all single-token segments (decodes) in one
        batched call; with a paged cache it also writes all new K/V with one scatter. An
        attention plugin is handed one request's ``(q, k, v, mask)`` at a time, so with a
        plugin every segment goes alone; both ways give the same numbers to rounding.
        """
        x = self.embed(batch.token_ids, batch.positions)                    # (N, d)
        layout = StepLayout.of(batch, cache) if attend is masked_attention else None
        workspace = self._workspace(layout, cache)
        for li, layer in enumerate(self.layers):
            q, k, v = self.qkv(layer, x)                                    # (N, H, D) each
            if layout is not None:
                layout.write(li, batch, cache, k, v)
                attn = layout.attend(li, q, cache, workspace)
            else:
                for seg in batch.segments:
                    rows = slice(seg.offset, seg.offset + seg.length)
                    cache.write(li, seg.req_id, seg.start_pos, k[rows], v[rows])
                contexts = [cache.read(li, seg.req_id) for seg in batch.segments]
                attn = segmented_attention(q, batch.cu_seqlens, contexts, attend)
            x = self.finish_layer(layer, x, attn.reshape(x.shape[0], -1))
        last = [s.offset + s.length - 1 for s in batch.segments if s.samples]
        return self.lm_head(x[last])

    def _workspace(self, layout: StepLayout | None, cache) -> np.ndarray | None:
        """Scratch memory for a paged step's decode gather, kept and grown across steps."""
        if layout is None or layout.context_slots is None:
            return None
        size = decode_workspace_size(*layout.context_slots.shape,
                                     self.n_heads, self.head_dim)
        scratch = getattr(self, "_scratch", None)
        if scratch is None or scratch.size < size or scratch.dtype != self.dtype:
            self._scratch = scratch = np.empty(2 * size, dtype=self.dtype)     # room to grow
        return scratch

    # ------------------------------------------------------------------ the reference
    def generate(self, prompt: Sequence[int], max_new_tokens: int, sampling=None,
                 logits_processors: Sequence = ()) -> list[int]:
        """Continue one request alone, recomputing the full sequence for every token.

        No cache, no batching, no chunks: the reference the scheduler must reproduce exactly.
        ``sampling`` (a :class:`~cblab_src.core.sampling.SamplingParams`, greedy by default)
        and ``logits_processors`` work as they do for a scheduled request, so a sampled request
        can be compared with itself alone. Stops early on the EOS token.
        """
        from .sampling import check_logits_processors
        logits_processors = check_logits_processors(logits_processors)   # before any forward
        tokens = list(self.check_tokens("prompt", prompt))
        n = non_negative_int("max_new_tokens", max_new_tokens)
        params = GREEDY if sampling is None else sampling
        if not isinstance(params, SamplingParams):
            raise TypeError(f"sampling must be a SamplingParams or None, got {sampling!r}")
        if n and len(tokens) + n - 1 > self.max_seq_len:
            raise ValueError(f"prompt length {len(tokens)} + max_new_tokens {n} - 1 exceeds "
                             f"max_seq_len {self.max_seq_len}")
        rng, out = params.make_rng(), []
        while len(out) < n and (not out or out[-1] != params.eos_token_id):
            logits = self.forward_prefill_dense(tokens + out).logits[-1]
            logits = apply_logits_processors(logits_processors, tuple(tokens + out), logits)
            out.append(sample_token(logits, params, rng))
        return out

    def check_tokens(self, name: str, tokens: Sequence[int]) -> tuple[int, ...]:
        """Validate token ids against this model's vocabulary."""
        return token_ids(name, tokens, vocab_size=self.vocab_size)

    def check_request(self, req) -> None:
        """Refuse a request this model cannot run: unknown token ids, or a prompt plus its
        output longer than ``max_seq_len`` (the scheduler asks before queueing it)."""
        self.check_tokens("prompt", req.prompt)
        if req.prompt_len > self.max_seq_len:
            raise ValueError(f"prompt length {req.prompt_len} exceeds the model's "
                             f"max_seq_len {self.max_seq_len}")
        if req.max_kv_tokens > self.max_seq_len:
            raise ValueError(f"max_new_tokens {req.max_new_tokens} with prompt length "
                             f"{req.prompt_len} exceeds the model's max_seq_len {self.max_seq_len}")
