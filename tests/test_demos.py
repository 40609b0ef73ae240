"""The command-line demos run, say what their roadmap phase asks the reader to observe, and
the timeline's state derivation matches a hand-traced schedule."""

from __future__ import annotations

import re
import sys

import numpy as np
import pytest

from cblab_src import Request, Scheduler
from cblab_src.demos import (_common, demo_paged_attention, demo_prefill_decode_mix,
                             demo_prefill_only, demo_ragged_mask, demo_scheduler_timeline,
                             interactive_demo)
from cblab_src.demos.demo_scheduler_timeline import gantt, timeline_rows


def run(module, args, capsys) -> str:
    assert module.main(args) == 0
    return capsys.readouterr().out


def step_lines(out: str) -> list[str]:
    return [line for line in out.splitlines() if line.startswith("[step ")]


# ---------------------------------------------------------------------- phase 1
def test_prefill_only_kv_length_mask_and_first_token(capsys):
    out = run(demo_prefill_only, ["--prompt-len", "4", "--seed", "1"], capsys)
    assert "layer 0: KV length 4 == prompt length 4: True" in out
    assert "layer 1: KV length 4 == prompt length 4: True" in out
    assert "0 ■ · · ·\n1 ■ ■ · ·\n2 ■ ■ ■ ·\n3 ■ ■ ■ ■" in out
    assert "first token = argmax(logits[-1])" in out
    assert "equal: True" in out


# ---------------------------------------------------------------------- phase 2
def test_ragged_mask_token_table_mask_and_waste(capsys):
    out = run(demo_ragged_mask, ["--lengths", "2", "3", "--seed", "0"], capsys)
    req_row = next(line for line in out.splitlines() if "req_id :" in line)
    pos_row = next(line for line in out.splitlines() if "pos    :" in line)
    assert req_row.split(":")[1].split() == ["A", "A", "B", "B", "B"]
    assert pos_row.split(":")[1].split() == ["0", "1", "0", "1", "2"]
    mask_rows = {line.split()[0]: line.split()[1:] for line in out.splitlines()
                 if line[:2] in ("A0", "A1", "B0", "B1", "B2")}
    assert mask_rows["A1"] == ["■", "■", "·", "·", "·"]
    assert mask_rows["B2"] == ["·", "·", "■", "■", "■"]
    assert "wasting 1" in out          # 2 x 3 slots for 5 tokens


# ---------------------------------------------------------------------- phase 3
@pytest.mark.parametrize("layout", ["paged", "dense"])
def test_prefill_decode_mix_logs_steps_and_matches_generate(capsys, layout):
    args = ["--budget", "5", "--chunk", "3", "--requests", "3", "--max-new-tokens", "3",
            "--layout", layout]
    out = run(demo_prefill_decode_mix, args, capsys)
    lines = step_lines(out)
    assert lines and all("decode=" in line and "prefill=" in line for line in lines)
    finished = " ".join(line.split("finished=")[1] for line in lines if "finished=" in line)
    assert sorted(re.findall(r"\d+", finished)) == ["0", "1", "2"]    # each finishes once
    assert out.count("equal: True") == 3
    assert "all requests match generating alone: True" in out


# ---------------------------------------------------------------------- phase 4
def test_scheduler_timeline_prints_gantt_budget_and_latencies(capsys):
    out = run(demo_scheduler_timeline, ["--budget", "6", "--chunk", "3", "--requests", "4",
                                        "--seed", "2"], capsys)
    rows = {line.split("  ")[0]: line for line in out.splitlines()
            if line.startswith(("req ", "budget"))}
    assert {"req 0", "req 1", "req 2", "req 3", "budget"} <= set(rows)
    assert all("P" in rows[f"req {i}"] for i in range(4))
    assert "TTFT" in out and "TPOT" in out and "e2e" in out


def _hand_traced_run():
    """budget 3, chunk 3. A (3 prompt, 3 new) and B (2, 3) arrive at 0, C (1, 1) at 1.

    step 0: A prefills 3 (first token); budget spent, B waits.   A P  B .  C
    step 1: A decodes; B admitted, prefills 2 (first token);     A D  B P  C .
            budget spent, C waits.
    step 2: A, B decode (A finishes); C prefills 1, finishes.    A D  B D  C P
    step 3: B decodes, finishes.                                 A    B D  C
    """
    sched = Scheduler(None, max_tokens_per_step=3, prefill_chunk_size=3)
    reqs = [Request("A", [1, 2, 3], 3), Request("B", [4, 5], 3),
            Request("C", [6], 1, arrival_step=1)]
    for r in reqs:
        sched.add_request(r)
    return reqs, sched.run()


def test_timeline_rows_hand_traced():
    reqs, history = _hand_traced_run()
    assert timeline_rows(reqs, history) == ["PDD ", ".PDD", " .P "]
    assert gantt(timeline_rows(reqs, history), ["A", "B", "C"]) == [
        "step   0", "       0123", "req A  PDD", "req B  .PDD", "req C   .P"]


def test_timeline_rows_mark_requests_left_out_when_the_budget_shrinks():
    # Two 1-token prompts prefill in step 0; then the budget drops to 1, so only the oldest
    # decode fits: B is running but left out ('-') until A finishes.
    sched = Scheduler(None, max_tokens_per_step=2, prefill_chunk_size=1)
    reqs = [sched.add_request(Request(rid, [7], 3)) for rid in ("A", "B")]
    history = [sched.step()]
    sched.max_tokens_per_step = 1
    history += sched.run()
    assert timeline_rows(reqs, history) == ["PDD  ", "P--DD"]


def test_timeline_rows_mark_preemptions():
    # Three 2-token blocks for two requests that each grow to 4 tokens: when a decode needs a
    # fourth block, the youngest running request (B) is preempted and recomputes later.
    sched = Scheduler(None, max_tokens_per_step=8, prefill_chunk_size=8, block_size=2,
                      num_blocks=3)
    reqs = [sched.add_request(Request(rid, [1, 2], 3)) for rid in ("A", "B")]
    history = sched.run()
    rows = timeline_rows(reqs, history)
    assert "x" in rows[1] and "x" not in rows[0]
    assert rows[1].index("x") == reqs[1].preempted_steps[0]


def test_timeline_rows_request_with_no_output_is_done_in_its_step():
    # max_new_tokens=0: the request finishes in the step it arrives, without running.
    sched = Scheduler(None, max_tokens_per_step=4, prefill_chunk_size=4)
    reqs = [sched.add_request(Request("A", [1, 2], 2)),
            sched.add_request(Request("Z", [3], 0, arrival_step=1))]
    history = sched.run()
    assert timeline_rows(reqs, history) == ["PD", "  "]


# ---------------------------------------------------------------------- phase 5
def test_paged_attention_prints_block_tables_and_checks(capsys):
    args = ["--block-size", "4", "--prompt-len", "6", "--max-new-tokens", "3", "--num-blocks", "8"]
    out = run(demo_paged_attention, args, capsys)
    assert "len(cache) = 12" in out and "len(cache) = 14" in out and "len(cache) = 0" in out
    assert "A: num_computed_tokens   6  block_table [0, 1]" in out
    assert "B: num_computed_tokens   6  block_table [2, 3]" in out
    assert "pool |AAAA|AA··|BBBB|BB··|" in out
    assert "blocks used 4/8, free 4, cached 0, shared 0, wasted slots 4" in out
    assert "paged == dense: False" not in out
    assert "matched dense attention after every step: True" in out


def test_paged_attention_second_request_waits_for_blocks(capsys):
    # Pool of 3 blocks of 4: A's 6-token prompt takes 2 blocks; B's first chunk needs 2, only
    # 1 is left, so B waits for admission until A finishes (A never needs a 3rd block:
    # 6 + 3 - 1 = 8 tokens).
    args = ["--block-size", "4", "--prompt-len", "6", "--max-new-tokens", "3", "--num-blocks", "3"]
    out = run(demo_paged_attention, args, capsys)
    assert "B: waiting for admission: its first chunk needs 2 block(s), 1 available" in out
    assert step_lines(out)[:4] == ["[step 0] decode=0 prefill=6 reqs=['A']",
                                   "[step 1] decode=1 prefill=0 reqs=['A']",
                                   "[step 2] decode=1 prefill=0 reqs=['A'] finished=['A']",
                                   "[step 3] decode=0 prefill=6 reqs=['B']"]
    assert "preempted" not in out and "preemptions: 0, tokens recomputed: 0" in out
    assert "matched dense attention after every step: True" in out


def test_paged_attention_preempts_when_the_pool_runs_out(capsys):
    # Pool of 2 blocks of 4, prompts of 4: both admitted in step 0 (one block each). In step 1
    # A's decode needs a 2nd block, none is free: B (the youngest) is preempted, A takes its
    # block. B resumes in step 3 (A's blocks are back after step 2), recomputes its prompt and
    # its token (4 + 1), samples its 2nd token in step 4 and its last in step 5.
    args = ["--block-size", "4", "--prompt-len", "4", "--max-new-tokens", "3", "--num-blocks", "2"]
    out = run(demo_paged_attention, args, capsys)
    assert step_lines(out) == [
        "[step 0] decode=0 prefill=8 reqs=['A', 'B']",
        "[step 1] decode=1 prefill=0 reqs=['A'] preempted=[B (req A needed 1 block, 0 available)]",
        "[step 2] decode=1 prefill=0 reqs=['A'] finished=['A']",
        "[step 3] decode=0 prefill=4 reqs=['B']",
        "[step 4] decode=0 prefill=1 reqs=['B']",
        "[step 5] decode=1 prefill=0 reqs=['B'] finished=['B']",
    ]
    assert "B: preempted (req A needed 1 block, 0 available): its KV (4 tokens) is released" in out
    assert ("B: waiting to resume: its prompt and 1 generated token(s) will be prefilled again"
            in out)
    assert "pool |AAAA|A···|" in out
    assert "preemptions: 1, tokens recomputed: 4, prefix hit rate: 0%" in out
    assert "matched dense attention after every step: True" in out


def test_paged_attention_with_prefix_caching_keeps_and_reuses_blocks(capsys):
    # B preempts itself in step 1 (A took the last free block); its 2 full blocks stay cached
    # ('~'), so on resuming in step 3 it computes only its newest token.
    args = ["--block-size", "4", "--prompt-len", "8", "--max-new-tokens", "3", "--num-blocks", "5",
            "--prefix-caching"]
    out = run(demo_paged_attention, args, capsys)
    assert "pool |AAAA|AAAA|~~~~|~~~~|A···|" in out
    assert "[step 3] decode=0 prefill=1 reqs=['B']" in step_lines(out)
    assert "cached 4, shared 0" in out
    assert "matched dense attention after every step: True" in out


def test_paged_attention_refuses_a_request_that_never_fits(capsys):
    assert demo_paged_attention.main(["--prompt-len", "10", "--num-blocks", "2"]) == 2
    assert "num_blocks is 2" in capsys.readouterr().err


# ---------------------------------------------------------------------- phase 9
def test_interactive_demo_without_ansi_terminates_with_step_lines(capsys):
    out = run(interactive_demo, ["--no-ansi", "--delay", "0", "--requests", "5"], capsys)
    lines = step_lines(out)
    assert lines[0].startswith("[step 0] decode=0 prefill=")
    assert all("waiting=" in line and "kv_blocks=" in line for line in lines)
    assert "\x1b[" not in out
    assert "done: 5/5 requests finished" in out
    assert "preemptions 0 (0 tokens recomputed), prefix hit rate 0%" in out


def test_interactive_demo_with_a_small_pool_preempts_and_still_finishes(capsys):
    out = run(interactive_demo, ["--no-ansi", "--delay", "0", "--requests", "12", "--num-blocks",
                                 "10"], capsys)
    lines = step_lines(out)
    preempted = [line for line in lines if " preempted=[" in line]
    assert preempted and all(re.search(r"preempted=\[\d+ \(req \d+ needed \d+ blocks?, \d+ "
                                       r"available\)", line) for line in preempted)
    count = int(re.search(r"preemptions (\d+) \(", out).group(1))
    assert count >= len(preempted) > 0
    assert "done: 12/12 requests finished" in out


def test_interactive_demo_stops_at_max_steps(capsys):
    out = run(interactive_demo, ["--no-ansi", "--delay", "0", "--max-steps", "3"], capsys)
    assert len(step_lines(out)) == 3
    assert "stopped at --max-steps 3" in out


def test_interactive_demo_redraws_in_place_on_a_terminal(capsys, monkeypatch):
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    out = run(interactive_demo, ["--delay", "0", "--requests", "3"], capsys)
    frames = out.split(interactive_demo.HOME)[1:]          # one frame per step
    num_steps = int(re.search(r"in (\d+) steps", out).group(1))
    assert len(frames) == num_steps
    assert all("KV" in f and "decode" in f and "tok/s" in f for f in frames)
    assert all("cached 0  shared 0" in f and "preempt " in f for f in frames)
    assert "done: 3/3 requests finished" in out


# ---------------------------------------------------------------------- helpers
def test_common_helpers():
    a = _common.make_workload(4, seed=3, mean_gap=2.0)
    b = _common.make_workload(4, seed=3, mean_gap=2.0)
    assert [(r.prompt, r.max_new_tokens, r.arrival_step) for r in a] == \
           [(r.prompt, r.max_new_tokens, r.arrival_step) for r in b]
    assert a[0].arrival_step == 0 and all(3 <= r.prompt_len <= 12 for r in a)
    assert _common.draw_mask(np.array([[True, False], [True, True]])) == "  0 1\n0 ■ ·\n1 ■ ■"
    assert _common.bar(1, 4, width=8) == "██░░░░░░"
    assert _common.sparkline([0, 2, 4], top=4) == " ▄█"
