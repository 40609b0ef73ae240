"""Seeded workloads: the same requests can be rebuilt as fresh ``Request`` objects any time.

A :class:`Workload` is an immutable description (prompts, output lengths, arrival times). Each
call to :meth:`Workload.requests` makes new, unstarted requests, so one workload can be run
under many budgets, chunk sizes or block sizes and the runs compared.

Arrivals are counted in scheduler steps (``arrival_step``), or in milliseconds
(``arrival_ms``) for a run timed by a cost model (:func:`cblab_src.timing.simulate_timed`).

Synthetic workloads (:func:`synthetic_workload`) draw prompt and output lengths from a
:class:`LengthDist` — fixed, uniform, exponential or log-normal — and arrivals from a Poisson
process (:func:`poisson_arrivals`) or all at once. Shapes of the papers the course reproduces
are named: :data:`SHAREGPT`, :func:`anyscale_shape`, :data:`SHAREGPT4_SARATHI`.

One module per part, every name importable from here: :mod:`.workload` (``RequestSpec``,
``Workload``), :mod:`.lengths` (``LengthDist``), :mod:`.arrivals` (``poisson_arrivals``),
:mod:`.shapes` (``WorkloadShape`` and the papers' shapes), :mod:`.generators`
(``random_workload``, ``synthetic_workload``).
"""

from .arrivals import poisson_arrivals
from .generators import random_workload, synthetic_workload
from .lengths import LENGTH_KINDS, MAX_LENGTH, LengthDist, sample_lengths
from .shapes import SHAREGPT, SHAREGPT4_SARATHI, WorkloadShape, anyscale_shape
from .workload import MAX_VOCAB, RequestSpec, Workload

__all__ = ["RequestSpec", "Workload", "MAX_LENGTH", "MAX_VOCAB", "LENGTH_KINDS", "LengthDist",
           "sample_lengths", "poisson_arrivals", "WorkloadShape", "SHAREGPT",
           "SHAREGPT4_SARATHI", "anyscale_shape", "random_workload", "synthetic_workload"]
