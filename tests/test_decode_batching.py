"""Batched decode attention (one call for every decode token of a step) against the
per-request path, and exact tokens through the scheduler."""

import numpy as np
import pytest

from cblab_src import (AttentionPlugin, Request, Scheduler, TinyLLM,
                       masked_attention)
from cblab_src.attention import (causal_mask, decode_attention, decode_workspace_size,
                                 pad_contexts, padded_block_tables, paged_attention,
                                 paged_decode_attention, slot_mapping)
from cblab_src.core.batch_builder import build_batch
from cblab_src.workloads import random_workload

MODEL = TinyLLM(seed=0)


def test_decode_attention_equals_each_query_alone():
    rng = np.random.default_rng(0)
    lens = [1, 5, 17, 3, 40]
    ks = [rng.standard_normal((n, 4, 8)) for n in lens]
    vs = [rng.standard_normal((n, 4, 8)) for n in lens]
    q = rng.standard_normal((len(lens), 4, 8))
    out = decode_attention(q, pad_contexts(ks), pad_contexts(vs), np.array(lens))
    for i, n in enumerate(lens):
        alone = masked_attention(q[i:i + 1], ks[i], vs[i], causal_mask(1, n))
        np.testing.assert_allclose(out[i], alone[0], rtol=1e-12, atol=1e-14)


def test_padding_never_leaks_even_when_it_holds_huge_values():
    rng = np.random.default_rng(1)
    k, v = rng.standard_normal((2, 6, 2, 4)), rng.standard_normal((2, 6, 2, 4))
    k[0, 3:], v[0, 3:] = 1e6, 1e6                       # garbage past request 0's 3 tokens
    q = rng.standard_normal((2, 2, 4))
    out = decode_attention(q, k, v, np.array([3, 6]))
    alone = masked_attention(q[:1], k[0, :3], v[0, :3], causal_mask(1, 3))
    np.testing.assert_allclose(out[0], alone[0], rtol=1e-12)


def test_paged_decode_attention_equals_paged_attention_per_sequence():
    rng = np.random.default_rng(2)
    pool_k, pool_v = rng.standard_normal((2, 12, 4, 2, 8))           # 12 blocks of 4 slots
    tables = [[5, 1, 9], [0], [7, 3, 11, 2]]
    lens = np.array([10, 2, 13])
    q = rng.standard_normal((3, 2, 8))
    padded = padded_block_tables(tables)
    assert padded.tolist() == [[5, 1, 9, 0], [0, 0, 0, 0], [7, 3, 11, 2]]
    batched = paged_decode_attention(q, pool_k, pool_v, padded, lens)
    scratch = np.empty(decode_workspace_size(3, 13, 2, 8))
    reused = paged_decode_attention(q, pool_k, pool_v, padded, lens, workspace=scratch)
    assert np.array_equal(batched, reused)
    with pytest.raises(ValueError, match="workspace"):
        paged_decode_attention(q, pool_k, pool_v, padded, lens, workspace=np.empty(10))
    for i, (table, n) in enumerate(zip(tables, lens)):
        alone = paged_attention(q[i:i + 1], pool_k, pool_v, table, int(n))
        np.testing.assert_allclose(batched[i], alone[0], rtol=1e-12, atol=1e-14)


def test_slot_mapping():
    tables = padded_block_tables([[3, 1], [2]])
    slots = slot_mapping(tables, np.array([0, 0, 0, 1]), np.array([2, 3, 4, 0]), block_size=4)
    assert slots.tolist() == [3 * 4 + 2, 3 * 4 + 3, 1 * 4 + 0, 2 * 4 + 0]


def _prefilled(layout):
    """Two requests prefilled through the scheduler, ready to decode."""
    sched = Scheduler(MODEL, max_tokens_per_step=64, prefill_chunk_size=64, kv_layout=layout,
                      block_size=4)
    for rid, n in (("a", 9), ("b", 14)):
        sched.add_request(Request(rid, list(range(1, n + 1)), 3))
    sched.step()
    return sched


def test_forward_step_dense_and_paged_give_identical_logits():
    logits = {}
    for layout in ("dense", "paged"):
        sched = _prefilled(layout)
        batch = build_batch([(r.req_id, r.generated[-1:], r.num_computed_tokens, True)
                             for r in sched.running])
        for r in sched.running:
            sched.kv_cache.extend(r.req_id, 1)
        logits[layout] = MODEL.forward_step(batch, sched.kv_cache)
    assert np.array_equal(logits["dense"], logits["paged"])


class PlainAttention(AttentionPlugin):
    def __init__(self):
        self.calls = 0

    def compute_attention(self, q, k, v, mask):
        self.calls += 1
        return masked_attention(q, k, v, mask)


def test_an_attention_plugin_sees_one_request_at_a_time_and_changes_no_token():
    w = random_workload(4, prompt_len=(3, 12), max_new_tokens=(2, 5), seed=3)
    tokens = {}
    for plugin in (None, PlainAttention()):
        sched = Scheduler(MODEL, max_tokens_per_step=16, prefill_chunk_size=4, block_size=4)
        sched.plugins.register_attention_plugin(plugin)
        requests = w.requests()
        for r in requests:
            sched.add_request(r)
        history = sched.run()
        tokens[plugin is None] = [r.generated for r in requests]
        if plugin is not None:
            segments = sum(len(s.decode_ids) + len(s.prefill_chunks) for s in history)
            assert plugin.calls == segments * MODEL.n_layers
    assert tokens[True] == tokens[False]


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("knobs", [
    dict(kv_layout="paged", block_size=1), dict(kv_layout="paged", block_size=4),
    dict(kv_layout="dense"), dict(kv_layout="paged", block_size=4, num_blocks=10),
    dict(kv_layout="paged", block_size=4, policy="prefill_first"),
])
def test_scheduled_tokens_equal_generating_each_request_alone(seed, knobs):
    w = random_workload(6, prompt_len=(1, 16), max_new_tokens=(1, 6), arrival_every=seed % 2,
                        seed=seed)
    sched = Scheduler(MODEL, max_tokens_per_step=12, prefill_chunk_size=5, **knobs)
    requests = w.requests()
    for r in requests:
        sched.add_request(r)
    sched.run()
    for r in requests:
        assert r.generated == MODEL.generate(list(r.prompt), r.max_new_tokens), r.req_id


def test_workspace_grows_and_is_reused():
    model = TinyLLM(seed=1)
    sched = Scheduler(model, max_tokens_per_step=64, prefill_chunk_size=64, block_size=4)
    for i in range(3):
        sched.add_request(Request(i, [1, 2, 3, 4, 5], 6))
    sched.step()
    sched.step()
    first = model._scratch
    sched.step()
    assert model._scratch is first                      # no new allocation per step
