"""What a study run measures and how: the plan, a contender (Spec), its result (Timing), and
interleaved timing of a sweep's contenders with their results checked before and after."""

from dataclasses import asdict, dataclass, field

import numpy as np

from .. import head_to_head


@dataclass(frozen=True)
class Plan:
    """How much to measure: the full study or the ``--quick`` smoke test."""

    quick: bool
    repeats: int
    batch_sizes: tuple
    #: rows timed per call for small batches (batch size -> rows); others: max_rows
    small_rows: dict
    #: rows timed per call at most (None: a whole epoch)
    max_rows: int | None
    thread_batches: tuple
    overhead_batches: tuple
    dtype_cases: tuple
    sparsity_sizes: tuple
    #: recipe -> epochs override (None: the recipe as written)
    recipe_epochs: dict | None


FULL = Plan(quick=False, repeats=5, batch_sizes=(1, 8, 32, 128, 1024, 8192, 60000),
            small_rows={1: 3000, 8: 12000}, max_rows=None,
            thread_batches=(32, 128, 1024, 60000), overhead_batches=(32, 128),
            dtype_cases=(((784, 128, 10), 128), ((784, 10, 10), 60000)),
            sparsity_sizes=((784, 10, 10), (784, 128, 10)), recipe_epochs=None)

QUICK = Plan(quick=True, repeats=3, batch_sizes=(1, 32, 1024), small_rows={1: 256},
             max_rows=4096, thread_batches=(128,), overhead_batches=(128,),
             dtype_cases=(((784, 128, 10), 128),),
             sparsity_sizes=((784, 10, 10), (784, 128, 10)),
             recipe_epochs={"seed": 20, "default": 1, "fast98": 1, "fast985": 1, "best": 1,
                            "fast98+shift1": 1, "fast98+smooth0.1": 1, "fast98+maxnorm3": 1,
                            "fast98+dropout0.2": 1, "fast98+ema0.999": 1,
                            "fast98+affine": 1})


@dataclass
class Timing:
    """One contender of one sweep: the seconds of each timed call and what a call did."""

    sweep: str
    name: str
    backend: str
    sizes: tuple
    batch_size: int
    dtype: str
    rows: int              # rows (images) processed per timed call
    n: int                 # rows of a whole epoch, to scale a fraction of one
    times: list
    roof: float            # measured GEMM roof of this dtype, GFLOP/s
    threads: int | None = None
    extra: dict = field(default_factory=dict)

    @property
    def median(self):
        return float(np.median(self.times))

    @property
    def epoch_s(self):
        """Seconds per epoch (n rows), scaled from the rows timed."""
        return self.median * self.n / self.rows

    @property
    def images_s(self):
        return self.rows / self.median

    @property
    def gflops(self):
        """Dense-equivalent GFLOP/s: skipped zeros count as work done."""
        return head_to_head.train_flops(list(self.sizes), self.rows) / self.median / 1e9

    @property
    def pct_roof(self):
        return 100.0 * self.gflops / self.roof

    @property
    def spread(self):
        """(max - min) / median of the timed calls, in %."""
        return 100.0 * (max(self.times) - min(self.times)) / self.median

    @property
    def fraction(self):
        return self.rows < self.n

    def as_dict(self):
        d = asdict(self)
        d.update(median_s=self.median, epoch_s=self.epoch_s, images_per_s=self.images_s,
                 gflops=self.gflops, pct_roof=self.pct_roof, spread_pct=self.spread)
        return d


@dataclass
class Spec:
    """A contender before it is timed: a callable plus the metadata of its Timing."""

    name: str
    fn: object
    backend: str
    sizes: tuple
    batch_size: int
    dtype: str
    rows: int
    threads: int | None = None
    extra: dict = field(default_factory=dict)
    last: object = None


def _finite(result):
    """Whether the losses a contender returned are all finite."""
    losses = result[0] if isinstance(result, tuple) else np.atleast_1d(result)
    return bool(np.all(np.isfinite(np.asarray(losses, dtype=np.float64))))


def time_sweep(sweep, specs, plan, n, roofs, log, notes):
    """Validate each spec (finite losses; this also compiles and warms it up), time them all
    interleaved, check their results again; returns a list of Timing."""
    kept = {}
    for spec in specs:
        result = spec.fn()
        if not _finite(result):
            notes.append(f"{spec.name}: left out, non-finite loss when checked before timing")
            continue
        kept[spec.name] = spec

    def recording(spec):
        def run():
            spec.last = spec.fn()
        return run

    log(f"  timing {len(kept)} contenders, {plan.repeats} interleaved runs each")
    times = head_to_head.interleaved({k: recording(s) for k, s in kept.items()},
                              repeats=plan.repeats, warmup=0)
    out = []
    for name, spec in kept.items():
        if not _finite(spec.last):
            notes.append(f"{name}: left out, non-finite loss after timing")
            continue
        extra = dict(spec.extra)
        if isinstance(spec.last, tuple) and len(spec.last[0]):
            extra["last_mean_loss"] = float(np.mean(spec.last[0]))
        out.append(Timing(sweep, name, spec.backend, tuple(spec.sizes), spec.batch_size,
                          spec.dtype, spec.rows, n, times[name], roofs[spec.dtype],
                          spec.threads, extra))
    return out


def rows_per_call(batch_size, plan, n):
    """Rows timed per call: a whole epoch, or a whole number of batches of a fraction of one."""
    if batch_size >= n:
        return n
    rows = min(n, plan.small_rows.get(batch_size, n), plan.max_rows or n)
    return n if rows >= n else max(batch_size, rows - rows % batch_size)


def row_order(batch_size, rows, perm, n):
    """Full batch: rows in order (no gather, as the notebook); else a fixed permutation."""
    return np.arange(n, dtype=np.int64) if batch_size >= n else perm[:rows]


def select(timings, **keys):
    """The timings whose attributes equal every keyword given, e.g. ``backend="numba"``."""
    return [t for t in timings if all(getattr(t, k) == v for k, v in keys.items())]


def select_one(timings, **keys):
    """The first of :func:`select`, or None."""
    found = select(timings, **keys)
    return found[0] if found else None
