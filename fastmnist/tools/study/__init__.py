"""The trade-off study behind ``fastmnist study``: sweeps -> numbers -> report.md + PNG plots.

Seven sweeps and the frontier, each answering "what does this buy, and when does it stop
paying?":

1. epoch time vs batch size (NumPy reference, Numba, PyTorch when installed);
2. 1 vs 2 (or more) threads;
3. float32 vs float64;
4. the cost of Python in the loop (one compiled call per batch vs per epoch);
5. dense vs zero-skipping layer 1;
6. achieved GFLOP/s and percent of the machine's measured GEMM roof, for all of the above;
7. test accuracy vs training seconds for every recipe, and for each trick of training
   (shifts, affine warps, label smoothing, max-norm, dropout, weight averaging) switched on
   alone over ``fast98``;
8. the accuracy-time frontier of those runs (``frontier``): the Pareto-optimal ones and what
   each trick buys per second it costs.

Every timing is the median of runs interleaved round-robin with the other contenders of its
sweep (:func:`fastmnist.tools.harness.timing.interleaved`), so that a noisy, shared machine
slows them all alike; each contender's result is checked (finite losses) before it is timed and
after.
The sentences of the report are derived from the measured numbers, not written in advance.

Plots need matplotlib (the ``plot`` extra); figures are drawn on the Agg canvas without
pyplot, and every file (report.md, study.json, the PNGs) is written atomically: a temporary file
in the same folder, then ``os.replace``.

Modules, one concern each:

- :mod:`.timing`: the plan (full or ``--quick``), Spec (a contender), Timing (its result),
  :func:`~.timing.time_sweep` (check, time interleaved, check again);
- :mod:`.contenders`: the callables timed (an epoch per backend, a step per call, PyTorch,
  a thread count);
- :mod:`.sweeps`: the sweeps, each a list of contenders timed together;
- :mod:`.machine`: CPU, cores, memory, load, versions;
- :mod:`.words`: numbers into sentences and Markdown tables;
- :mod:`.markdown`: report.md, a section per sweep;
- :mod:`.frontier`: the Pareto-optimal runs of sweep 7 and each trick's gain per second;
- :mod:`.figures`: the PNGs (matplotlib imported only when drawing);
- :mod:`.run`: :func:`run_study`, which runs it all and writes the files.
"""

from .run import require_matplotlib, run_study

__all__ = ["run_study", "require_matplotlib"]
