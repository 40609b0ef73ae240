"""Prefill on one scheduler, decode on another: the KV hand-off (core/handoff.py).

The texts must be those of one scheduler running everything — ``generate`` alone — for greedy
and seeded random sampling, for any mix of hand-offs arriving while the decode instance is
busy, whatever the two pools' layouts and block sizes; the prefill pool keeps a finished
request's blocks until it is handed off, then gets them all back.
"""

from __future__ import annotations

import numpy as np
import pytest

from cblab_src import FinishReason, Request, SamplingParams, Scheduler
from cblab_src.core.handoff import KVHandoff, continuation

from conftest import MODEL, check_block_accounting, make_workload


def sampling_for(rid: int) -> SamplingParams:
    return SamplingParams(temperature=0.9, top_k=16, seed=rid) if rid % 2 else SamplingParams()


@pytest.mark.parametrize("decode_layout", ["paged", "dense"])
@pytest.mark.parametrize("seed", range(4))
def test_a_handed_off_request_writes_what_it_writes_alone(seed, decode_layout):
    specs = [s for s in make_workload(seed, num_requests=(3, 6), prompt_len=(1, 14),
                                      max_new=(1, 6)) if s[2] >= 1]
    prefill = Scheduler(MODEL, max_tokens_per_step=8, prefill_chunk_size=5, block_size=2,
                        num_blocks=40, kv_hand_off=True)
    decode = Scheduler(MODEL, max_tokens_per_step=6, prefill_chunk_size=3, block_size=4,
                       kv_layout=decode_layout)
    first = {rid: prefill.add_request(Request(rid, list(p), 1, arrival_step=a,
                                              sampling=sampling_for(rid)))
             for rid, p, _, a in specs}
    wanted = {rid: n for rid, _, n, _ in specs}
    # Step both instances together; hand each request over as soon as its prefill finishes.
    pending = set(first)
    while pending or decode.has_unfinished:
        if prefill.has_unfinished:
            stats = prefill.step()
            for rid in stats.finished_ids:
                r = first[rid]
                handoff = prefill.hand_off(rid)
                assert isinstance(handoff, KVHandoff) and handoff.num_tokens == r.prompt_len
                assert handoff.nbytes == 2 * MODEL.n_layers * r.prompt_len * MODEL.d_model * 8
                if wanted[rid] > 1 and r.finish_reason is not FinishReason.STOP:
                    decode.add_request(continuation(r, wanted[rid]), kv=handoff)
                pending.discard(rid)
        if decode.has_unfinished:
            decode.step()
    for rid, r in first.items():
        rest = decode.requests[rid].generated if rid in decode.requests else []
        assert r.generated + rest == MODEL.generate(list(r.prompt), wanted[rid], r.sampling), rid
    for s in (prefill, decode):
        check_block_accounting(s.kv_cache)
        assert s.kv_cache.usage().used_blocks == 0


def test_the_prefill_pool_keeps_a_finished_request_until_it_is_handed_off():
    prefill = Scheduler(MODEL, max_tokens_per_step=8, prefill_chunk_size=8, block_size=4,
                        num_blocks=6, kv_hand_off=True)
    r = prefill.add_request(Request("a", [1, 2, 3, 4, 5, 6], 1))
    prefill.run()
    assert r.finished and prefill.kv_cache.usage().used_blocks == 2     # 6 tokens, blocks of 4
    handoff = prefill.hand_off("a")
    assert prefill.kv_cache.usage().used_blocks == 0 and handoff.num_tokens == 6
    with pytest.raises(ValueError, match="'a'.*no KV"):
        prefill.hand_off("a")                                           # only once


def test_a_hand_off_is_checked_before_anything_changes():
    prefill = Scheduler(MODEL, max_tokens_per_step=8, prefill_chunk_size=8, kv_hand_off=True)
    r = prefill.add_request(Request("a", [1, 2, 3], 1))
    prefill.run()
    handoff = prefill.hand_off("a")
    decode = Scheduler(MODEL, max_tokens_per_step=8, prefill_chunk_size=8)
    with pytest.raises(ValueError, match="KVHandoff of request 'b'"):
        decode.add_request(Request("b", [1, 2, 3, 9], 2), kv=handoff)       # someone else's
    with pytest.raises(ValueError, match="KVHandoff"):
        decode.add_request(Request("a", [1, 2, 3], 2), kv=handoff)          # nothing left to do
    blank = Scheduler(None, max_tokens_per_step=8, prefill_chunk_size=8, kv_hand_off=True)
    blank.add_request(Request("a", [1, 2, 3], 1))
    blank.run()
    with pytest.raises(ValueError, match="keys and values shaped"):
        decode.add_request(continuation(r, 3), kv=blank.hand_off("a"))     # no values to write
    assert not decode.has_unfinished and not decode.requests
    cont = decode.add_request(continuation(r, 3), kv=handoff)
    decode.run()
    assert r.generated + cont.generated == MODEL.generate([1, 2, 3], 3)
    with pytest.raises(ValueError, match="kv_hand_off"):
        decode.hand_off("a")                                                # not a prefill instance


def test_a_scheduling_only_hand_off_moves_no_values():
    prefill = Scheduler(None, max_tokens_per_step=8, prefill_chunk_size=8, kv_hand_off=True)
    r = prefill.add_request(Request(0, [1, 2, 3, 4], 1))
    prefill.run()
    handoff = prefill.hand_off(0)
    assert handoff.layers is None and handoff.nbytes == 0 and handoff.num_tokens == 4
    decode = Scheduler(None, max_tokens_per_step=8, prefill_chunk_size=8)
    decode.add_request(continuation(r, 4), kv=handoff)
    history = decode.run()
    assert history[0].prefill_chunks == ((0, 4, 1),)     # only the first token's K/V computed
    assert np.array_equal([s.num_tokens for s in history], [1, 1, 1])
