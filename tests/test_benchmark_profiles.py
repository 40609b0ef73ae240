"""benchmarks/profile_*.py: the profiles wrap engine functions by name, so they must follow
the engine's names, account for every part, and put every original back."""

import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
from part_timer import PartTimer  # noqa: E402

import profile_decode_step  # noqa: E402
import profile_simulation  # noqa: E402


class Toy:
    def outer(self):
        time.sleep(0.01)
        return self.inner() + 1

    def inner(self):
        time.sleep(0.05)
        return 1


def test_a_part_excludes_the_wrapped_parts_it_calls():
    timer = PartTimer()
    with timer.installed([(Toy, "outer", "outer"), (Toy, "inner", "inner")]):
        assert Toy().outer() == 2
    assert timer.seconds["inner"] >= 0.05
    assert 0.01 <= timer.seconds["outer"] < 0.05     # its own sleep, not inner's 0.05 s too


def test_the_originals_are_back_even_after_an_exception():
    before = vars(Toy)["inner"]
    with pytest.raises(ZeroDivisionError):
        with PartTimer().installed([(Toy, "inner", "inner")]):
            assert vars(Toy)["inner"] is not before
            raise ZeroDivisionError
    assert vars(Toy)["inner"] is before


@pytest.mark.parametrize("profile, argv", [
    (profile_simulation, ["--requests", "200"]),
    (profile_decode_step, ["--batch", "4", "--repeats", "1"]),
])
def test_each_profile_prints_every_part_and_restores_the_engine(profile, argv, capsys):
    originals = [vars(owner)[name] for owner, name, _ in profile.PARTS]
    assert profile.main(argv) == 0
    table = capsys.readouterr().out
    for _, _, label in profile.PARTS:
        assert label in table
    assert [vars(owner)[name] for owner, name, _ in profile.PARTS] == originals
