"""Long runs pause Python's cyclic garbage collector, and leave it as they found it."""

import gc

import pytest

from cblab_src import Request, Scheduler, SchedulerPlugin
from cblab_src._gc import cycle_collector_paused


@pytest.fixture
def collector_on():
    was = gc.isenabled()
    gc.enable()
    yield
    if not was:
        gc.disable()


def test_the_collector_is_off_inside_and_back_on_after_even_after_an_error(collector_on):
    with cycle_collector_paused():
        assert not gc.isenabled()
    assert gc.isenabled()
    with pytest.raises(RuntimeError), cycle_collector_paused():
        raise RuntimeError("a failing run")
    assert gc.isenabled()


def test_a_collector_turned_off_stays_off(collector_on):
    gc.disable()
    with cycle_collector_paused():
        pass
    assert not gc.isenabled()


class CollectorWatch(SchedulerPlugin):
    """Notes whether the collector runs during each step; can fail the third."""

    def __init__(self, fail_at=None):
        self.enabled, self.fail_at = [], fail_at

    def before_step(self, scheduler):
        if scheduler.step_count == self.fail_at:
            raise RuntimeError("a plugin fails")
        self.enabled.append(gc.isenabled())


def test_run_pauses_the_collector_and_restores_it_however_it_ends(collector_on):
    for fail_at in (None, 3):
        sched = Scheduler(None, max_tokens_per_step=4, prefill_chunk_size=4)
        watch = sched.plugins.register_scheduler_plugin(CollectorWatch(fail_at))
        sched.add_request(Request(0, [1, 2, 3], 5))
        if fail_at is None:
            assert len(sched.run()) == 5
        else:
            with pytest.raises(RuntimeError, match="a plugin fails"):
                sched.run()
        assert watch.enabled and not any(watch.enabled)
        assert gc.isenabled()
