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
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from ._validate import MAX_COUNT, non_negative_int, one_of, positive_int, real, token_ids
from .core.request import Request
from .model.sampling import GREEDY, SamplingParams


# Longest length a distribution may draw, in tokens: beyond any model's context, and small
# enough that lengths and their sums stay exact in int64.
MAX_LENGTH = 10**9
MAX_VOCAB = 2**62              # token ids are drawn as int64


@dataclass(frozen=True)
class RequestSpec:
    """Everything needed to make one request.

    Checked when built, as :class:`~cblab_src.core.request.Request` checks its fields: an int
    or str ``req_id``; a non-empty ordered prompt of token ids (stored as a tuple);
    ``max_new_tokens`` and ``arrival_step`` integers >= 0; ``arrival_ms`` ``None`` or a finite
    number >= 0 (a NaN or infinite arrival would stall a timed run forever).
    """

    req_id: Hashable
    prompt: tuple[int, ...]
    max_new_tokens: int
    arrival_step: int = 0
    sampling: SamplingParams = GREEDY
    arrival_ms: float | None = None      # arrival time of a timed run (None: use arrival_step)

    def __post_init__(self) -> None:
        if not isinstance(self.req_id, (int, str)) or isinstance(self.req_id, bool):
            raise TypeError(f"req_id must be an int or a str, got {self.req_id!r}")
        object.__setattr__(self, "prompt", token_ids("prompt", self.prompt))
        non_negative_int("max_new_tokens", self.max_new_tokens)
        non_negative_int("arrival_step", self.arrival_step)
        if not isinstance(self.sampling, SamplingParams):
            raise TypeError(f"sampling must be a SamplingParams, got {self.sampling!r}")
        if self.arrival_ms is not None:
            object.__setattr__(self, "arrival_ms", real("arrival_ms", self.arrival_ms,
                                                        minimum=0.0))


@dataclass(frozen=True)
class Workload:
    """An ordered, immutable set of request specifications."""

    specs: tuple[RequestSpec, ...]

    def __post_init__(self) -> None:
        if isinstance(self.specs, (str, bytes)) or not isinstance(self.specs, Sequence):
            raise TypeError(f"specs must be a tuple of RequestSpecs, got {self.specs!r}")
        ids = set()
        for i, spec in enumerate(self.specs):
            if not isinstance(spec, RequestSpec):
                raise TypeError(f"specs[{i}] must be a RequestSpec, got {spec!r}")
            if spec.req_id in ids:
                raise ValueError(f"specs[{i}] repeats req_id {spec.req_id!r}")
            ids.add(spec.req_id)
        object.__setattr__(self, "specs", tuple(self.specs))

    def requests(self) -> list[Request]:
        """Fresh, unstarted ``Request`` objects for this workload."""
        return [Request(s.req_id, s.prompt, s.max_new_tokens, s.arrival_step, s.sampling)
                for s in self.specs]

    def __len__(self) -> int:
        return len(self.specs)

    @property
    def req_ids(self) -> list[Hashable]:
        return [s.req_id for s in self.specs]

    @property
    def prompt_lens(self) -> list[int]:
        return [len(s.prompt) for s in self.specs]

    @property
    def output_lens(self) -> list[int]:
        """Each request's ``max_new_tokens`` (what it generates: no model samples EOS here)."""
        return [s.max_new_tokens for s in self.specs]

    @property
    def arrival_ms(self) -> np.ndarray | None:
        """``(R,)`` arrival times in milliseconds, or ``None`` if arrivals are counted in steps."""
        if all(s.arrival_ms is None for s in self.specs):
            return None
        return np.array([0.0 if s.arrival_ms is None else s.arrival_ms for s in self.specs])

    def arrivals_in_ms(self, instead: str) -> np.ndarray:
        """``(R,)`` arrival times in ms for a clock-driven run: ``arrival_ms``, or all at 0 when
        every request arrives at once. Arrivals counted in steps are refused; ``instead`` says
        what to run for them."""
        if self.arrival_ms is not None:
            return self.arrival_ms
        if any(s.arrival_step for s in self.specs):
            raise ValueError(f"this workload's arrivals are counted in steps: {instead}")
        return np.zeros(len(self))

    @classmethod
    def from_lengths(cls, prompt_lens: Sequence[int], max_new_tokens: Sequence[int] | int,
                     arrival_steps: Sequence[int] | int = 0, *, seed: int = 0,
                     vocab_size: int = 128,
                     arrival_ms: Sequence[float] | None = None) -> "Workload":
        """Requests ``0, 1, ...`` with the given prompt lengths (random seeded tokens).

        ``arrival_ms`` (one time per request, in milliseconds) makes a workload for timed runs.
        """
        if isinstance(prompt_lens, (str, bytes)) or not isinstance(prompt_lens,
                                                                   (Sequence, np.ndarray)):
            raise TypeError(f"prompt_lens must be a sequence of ints, got {prompt_lens!r}")
        n = len(prompt_lens)
        new = _broadcast("max_new_tokens", max_new_tokens, n)
        arrivals = _broadcast("arrival_steps", arrival_steps, n)
        times = [None] * n if arrival_ms is None else list(_broadcast("arrival_ms", arrival_ms, n,
                                                                    scalar=False))
        times = [None if t is None else real(f"arrival_ms[{i}]", t, minimum=0.0)
                 for i, t in enumerate(times)]
        rng = np.random.default_rng(non_negative_int("seed", seed))
        specs = []
        for i, (p, m, a, t) in enumerate(zip(prompt_lens, new, arrivals, times)):
            prompt = rng.integers(0, positive_int("vocab_size", vocab_size, maximum=MAX_VOCAB),
                                  positive_int("prompt_len", p, maximum=MAX_LENGTH))   # -> tuple
            specs.append(RequestSpec(i, prompt, non_negative_int("max_new_tokens", m),
                                     non_negative_int("arrival_step", a), arrival_ms=t))
        return cls(tuple(specs))

    @classmethod
    def from_texts(cls, prompts: Mapping[Hashable, str] | Sequence[str], tokenizer,
                   max_new_tokens: Sequence[int] | int, arrival_steps: Sequence[int] | int = 0,
                   *, sampling: SamplingParams | None = None) -> "Workload":
        """Requests whose prompts are texts, encoded with ``tokenizer``.

        ``prompts`` maps request ids to texts (a plain sequence gets ids ``0, 1, ...``).
        ``sampling`` defaults to greedy decoding that stops at ``tokenizer.eos_id``, as real
        servers stop at EOS; pass ``SamplingParams()`` to always run ``max_new_tokens``.
        """
        items = list(prompts.items()) if isinstance(prompts, Mapping) else list(enumerate(prompts))
        if not items:
            raise ValueError(f"prompts must not be empty, got {prompts!r}")
        new = _broadcast("max_new_tokens", max_new_tokens, len(items))
        arrivals = _broadcast("arrival_steps", arrival_steps, len(items))
        params = SamplingParams(eos_token_id=tokenizer.eos_id) if sampling is None else sampling
        return cls(tuple(RequestSpec(rid, tuple(tokenizer.encode(text)),
                                     non_negative_int("max_new_tokens", m),
                                     non_negative_int("arrival_step", a), params)
                         for (rid, text), m, a in zip(items, new, arrivals)))


def random_workload(num_requests: int, *, prompt_len: tuple[int, int] = (4, 24),
                    max_new_tokens: tuple[int, int] = (2, 8), arrival_every: int = 0,
                    seed: int = 0, vocab_size: int = 128) -> Workload:
    """``num_requests`` requests with lengths uniform in the inclusive ranges given.

    Request ``i`` arrives at step ``i * arrival_every`` (all at once when 0).
    ``random_workload(3, seed=1)`` is the same three requests every time.
    """
    n = positive_int("num_requests", num_requests, maximum=MAX_COUNT)
    every = non_negative_int("arrival_every", arrival_every)
    rng = np.random.default_rng(non_negative_int("seed", seed))
    lo, hi = _range("prompt_len", prompt_len, minimum=1)
    plens = rng.integers(lo, hi + 1, n)
    lo, hi = _range("max_new_tokens", max_new_tokens, minimum=0)
    news = rng.integers(lo, hi + 1, n)
    return Workload.from_lengths(plens.tolist(), news.tolist(), [i * every for i in range(n)],
                                 seed=int(rng.integers(2**31)), vocab_size=vocab_size)


def _range(name: str, value, *, minimum: int) -> tuple[int, int]:
    if not (isinstance(value, tuple) and len(value) == 2):
        raise TypeError(f"{name} must be a (low, high) tuple, got {value!r}")
    lo, hi = (non_negative_int(name, v, maximum=MAX_LENGTH) for v in value)
    if lo < minimum or hi < lo:
        raise ValueError(f"{name} must satisfy {minimum} <= low <= high, got {value!r}")
    return lo, hi


def _broadcast(name: str, value, n: int, *, scalar: bool = True) -> list:
    """``value`` as ``n`` entries: an int repeated (if ``scalar``), or a sequence of ``n``."""
    if scalar and isinstance(value, (int, np.integer)):
        return [value] * n
    if isinstance(value, (str, bytes)) or not isinstance(value, (Sequence, np.ndarray)):
        kind = "an int or a sequence" if scalar else "a sequence"
        raise TypeError(f"{name} must be {kind} of {n} entries, got {value!r}")
    if len(value) != n:
        raise ValueError(f"{name} must have {n} entries, got {len(value)}")
    return list(value)


# ---------------------------------------------------------------------- length distributions
LENGTH_KINDS = ("fixed", "uniform", "exponential", "lognormal")


@dataclass(frozen=True)
class LengthDist:
    """A distribution of token counts (prompt or output lengths), drawn with a seeded generator.

    * ``fixed``: always ``round(mean)``;
    * ``uniform``: integers in ``[low, high]``, both ends included;
    * ``exponential``: ``round(Exp(mean))``;
    * ``lognormal``: ``round(exp(N(mu, sigma)))`` with ``mu`` chosen so the mean is ``mean``
      (the median is ``mean * exp(-sigma**2 / 2)``): a long right tail, like real chat prompts.

    Lengths below ``low`` become ``low``. Above ``high``, ``truncate="clip"`` sets them to
    ``high``; ``truncate="resample"`` draws them again, keeping only lengths <= ``high`` (what
    Anyscale's benchmark did with its "capped exponential"), so the mean falls below ``mean``.
    Every parameter is checked when the distribution is built: ``mean``, ``low`` and ``high``
    are finite and at most :data:`MAX_LENGTH` tokens, ``sigma`` is in (0, 10); a far tail draw
    becomes ``MAX_LENGTH``.
    ``LengthDist.lognormal(161, sigma=1.0).sample(3, np.random.default_rng(0))`` ->
    ``array([111, 86, 185])``.
    """

    kind: str
    mean: float = 1.0                  # tokens, before clipping or truncation
    low: int = 1                       # smallest length
    high: int | None = None            # largest length (None: no cap)
    sigma: float = 1.0                 # lognormal: standard deviation of log(length)
    truncate: str = "clip"             # "clip" or "resample" lengths above high

    def __post_init__(self) -> None:
        one_of("kind", self.kind, LENGTH_KINDS)
        one_of("truncate", self.truncate, ("clip", "resample"))
        _length("low", self.low)
        if self.high is not None and _length("high", self.high) < self.low:
            raise ValueError(f"high must be >= low ({self.low}), got {self.high}")
        if self.kind == "uniform" and self.high is None:
            raise ValueError("a uniform LengthDist needs high, got high=None")
        real("mean", self.mean, minimum=0.0, maximum=MAX_LENGTH)
        _sigma(self.sigma)

    @classmethod
    def fixed(cls, length: int) -> "LengthDist":
        return cls("fixed", mean=float(_length("length", length)), low=0)

    @classmethod
    def uniform(cls, low: int, high: int) -> "LengthDist":
        return cls("uniform", mean=(_length("low", low) + _length("high", high)) / 2, low=low,
                   high=high)

    @classmethod
    def exponential(cls, mean: float, *, high: int | None = None, low: int = 1,
                    truncate: str = "clip") -> "LengthDist":
        return cls("exponential", mean=mean, low=low, high=high, truncate=truncate)

    @classmethod
    def lognormal(cls, mean: float | None = None, *, median: float | None = None,
                  sigma: float = 1.0, high: int | None = None, low: int = 1) -> "LengthDist":
        """Give the ``mean`` or the ``median`` (``mean = median * exp(sigma**2 / 2)``)."""
        if (mean is None) == (median is None):
            raise ValueError(f"give exactly one of mean and median, got mean={mean!r}, "
                             f"median={median!r}")
        if mean is None:
            median = real("median", median, minimum=0.0, maximum=MAX_LENGTH)
            mean = median * math.exp(_sigma(sigma) ** 2 / 2)
        return cls("lognormal", mean=mean, low=low, high=high, sigma=sigma)

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """``(n,)`` int64 lengths."""
        n = non_negative_int("n", n, maximum=MAX_COUNT)
        if self.kind == "fixed":
            return np.full(n, max(round(self.mean), self.low), dtype=np.int64)
        if self.kind == "uniform":
            return rng.integers(self.low, self.high + 1, n).astype(np.int64)
        out = self._draw(n, rng)
        if self.high is not None and self.truncate == "resample":
            out = out[out <= self.high]
            while out.size < n:
                more = self._draw(n, rng)
                out = np.concatenate([out, more[more <= self.high]])
            out = out[:n]
        if self.high is not None:
            out = np.minimum(out, self.high)
        return np.maximum(out, self.low)

    def _draw(self, n: int, rng: np.random.Generator) -> np.ndarray:
        if self.kind == "exponential":
            x = rng.exponential(self.mean, n)
        else:
            x = rng.lognormal(math.log(max(self.mean, 1e-9)) - self.sigma ** 2 / 2, self.sigma, n)
        # A far tail draw (log-normal, large sigma) becomes MAX_LENGTH, never an int64 overflow.
        return np.round(np.minimum(x, MAX_LENGTH)).astype(np.int64)


def _length(name: str, value) -> int:
    """A length in tokens: an integer in ``[0, MAX_LENGTH]``."""
    if non_negative_int(name, value) > MAX_LENGTH:
        raise ValueError(f"{name} must be <= MAX_LENGTH ({MAX_LENGTH}), got {value!r}")
    return int(value)


def _sigma(value) -> float:
    """A log-normal's sigma: a finite number in (0, 10)."""
    sigma = real("sigma", value)
    if not 0 < sigma < 10:
        raise ValueError(f"sigma must be a number in (0, 10), got {value!r}")
    return sigma


@dataclass(frozen=True)
class WorkloadShape:
    """Prompt and output length distributions, a cap on their sum, and where they come from."""

    prompt: LengthDist
    output: LengthDist
    max_total: int | None = None       # prompt + output <= max_total (the model's context)
    source: str = ""

    def __post_init__(self) -> None:
        for name in ("prompt", "output"):
            if not isinstance(getattr(self, name), LengthDist):
                raise TypeError(f"{name} must be a LengthDist, got {getattr(self, name)!r}")
        # Lengths are clipped so prompt + output <= max_total, with a prompt of >= 1 token and
        # room for at least one output token.
        if self.max_total is not None and non_negative_int("max_total", self.max_total) < 2:
            raise ValueError(f"max_total must be >= 2 (a 1-token prompt and 1 output token), "
                             f"got {self.max_total!r}")
        if not isinstance(self.source, str):
            raise TypeError(f"source must be a str, got {self.source!r}")


# vLLM (Kwon et al., SOSP'23), Fig. 11: ShareGPT input mean 161.31, output mean 337.99 tokens
# (OPT tokenizer), with a model context of 2048. The paper gives means and histograms, not the
# spread: sigma 1.0 (prompts) and 0.8 (outputs) are our choice, for a long tail of pasted
# documents and long answers. Clipping to the context lowers the means by a few percent.
SHAREGPT = WorkloadShape(
    prompt=LengthDist.lognormal(161.31, sigma=1.0), output=LengthDist.lognormal(337.99, sigma=0.8),
    max_total=2048,
    source="vLLM (Kwon et al., SOSP'23) Fig. 11: ShareGPT mean input 161.31, mean output 337.99 "
           "tokens; log-normal spreads (sigma 1.0 / 0.8) are ours")

# Sarathi-Serve (Agrawal et al., OSDI'24) Table 2, openchat_sharegpt4: prompt median 1730,
# P90 5696; output median 415, P90 834; requests longer than 8192 tokens removed. A log-normal
# with the same median and P90 has sigma = ln(P90 / median) / 1.2816.
SHAREGPT4_SARATHI = WorkloadShape(
    prompt=LengthDist.lognormal(median=1730, sigma=math.log(5696 / 1730) / 1.2816),
    output=LengthDist.lognormal(median=415, sigma=math.log(834 / 415) / 1.2816),
    max_total=8192,
    source="Sarathi-Serve (Agrawal et al., OSDI'24) Table 2, openchat_sharegpt4: prompt median "
           "1730 / P90 5696, output median 415 / P90 834, total <= 8192; log-normal fit to "
           "median and P90")


def anyscale_shape(max_output: int) -> WorkloadShape:
    """Anyscale's throughput benchmark (Daniel et al., 2023): 512-token prompts, outputs drawn
    from an exponential of mean 128 keeping only draws <= ``max_output`` (32, 128, 512, 1536)."""
    return WorkloadShape(
        prompt=LengthDist.fixed(512),
        output=LengthDist.exponential(128, high=positive_int("max_output", max_output),
                                      truncate="resample"),
        max_total=None,
        source="Anyscale blog 'How continuous batching enables 23x throughput in LLM "
               "inference' (Daniel et al., 2023): 1000 prompts x 512 tokens, outputs "
               "exponential(mean 128) <= cap, ignore EOS")


def sample_lengths(dist: LengthDist, n: int, seed: int = 0) -> np.ndarray:
    """``(n,)`` lengths from ``dist`` with a generator seeded by ``seed``."""
    if not isinstance(dist, LengthDist):
        raise TypeError(f"dist must be a LengthDist, got {dist!r}")
    return dist.sample(n, np.random.default_rng(non_negative_int("seed", seed)))


def poisson_arrivals(n: int, rate: float, seed: int = 0) -> np.ndarray:
    """``(n,)`` arrival times of a Poisson process of ``rate`` arrivals per unit of time.

    The first request arrives at 0; the gaps after it are exponential with mean ``1 / rate``,
    so ``n`` arrivals span about ``(n - 1) / rate``. Units are the caller's: a rate per second
    gives times in seconds, a rate per step times in steps.
    """
    n = non_negative_int("n", n, maximum=MAX_COUNT)
    scale = 1.0 / real("rate", rate, positive=True)
    if not math.isfinite(scale):
        raise ValueError(f"rate must be a positive number whose inverse is finite, got {rate!r}")
    gaps = np.random.default_rng(non_negative_int("seed", seed)).exponential(scale, n)
    gaps[:1] = 0.0
    return np.cumsum(gaps)


def synthetic_workload(num_requests: int, shape: WorkloadShape | None = None, *,
                       prompt: LengthDist | None = None, output: LengthDist | None = None,
                       max_total: int | None = None, arrival_rate: float | None = None,
                       arrival_unit: str = "s", seed: int = 0,
                       vocab_size: int = 128) -> Workload:
    """``num_requests`` requests with lengths drawn from ``shape`` (or ``prompt``/``output``).

    Arrivals: all at once when ``arrival_rate`` is None; else a Poisson process with that rate,
    per second (``arrival_unit="s"``: the requests get ``arrival_ms``, for
    :func:`cblab_src.timing.simulate_timed`) or per step (``"step"``: ``arrival_step``).
    Lengths are clipped so that prompt + output <= ``max_total``. Every random choice (lengths,
    arrivals, token ids) comes from ``seed``, in separate streams.
    """
    n = positive_int("num_requests", num_requests, maximum=MAX_COUNT)
    if shape is None:
        if prompt is None or output is None:
            raise ValueError("give a shape, or both prompt and output LengthDists")
        shape = WorkloadShape(prompt, output, max_total)
    elif prompt is not None or output is not None or max_total is not None:
        raise ValueError("give a shape or prompt/output/max_total, not both")
    if not isinstance(shape, WorkloadShape):
        raise TypeError(f"shape must be a WorkloadShape, got {shape!r}")
    one_of("arrival_unit", arrival_unit, ("s", "step"))
    if arrival_rate is not None:
        real("arrival_rate", arrival_rate, positive=True)
    streams = [np.random.default_rng(s) for s in
               np.random.SeedSequence(non_negative_int("seed", seed)).spawn(3)]
    prompts = np.maximum(shape.prompt.sample(n, streams[0]), 1)
    outputs = shape.output.sample(n, streams[1])
    if shape.max_total is not None:
        prompts = np.minimum(prompts, shape.max_total - 1)
        outputs = np.minimum(outputs, shape.max_total - prompts)
    steps, times = np.zeros(n, dtype=np.int64), None
    if arrival_rate is not None:
        t = poisson_arrivals(n, arrival_rate, seed=int(streams[2].integers(2**31)))
        if arrival_unit == "s":
            if not t[-1] < np.finfo(np.float64).max / 1000.0:
                raise ValueError(f"arrival_rate {arrival_rate!r} per second is too small: the "
                                 f"arrivals do not fit in a float of milliseconds")
            times = (t * 1000.0).tolist()
        elif not t[-1] < 2**62:
            raise ValueError(f"arrival_rate {arrival_rate!r} per step is too small: the "
                             f"arrival steps do not fit in an int64")
        else:
            steps = np.floor(t).astype(np.int64)
    return Workload.from_lengths(prompts.tolist(), outputs.tolist(), steps.tolist(),
                                 seed=int(streams[2].integers(2**31)), vocab_size=vocab_size,
                                 arrival_ms=times)
