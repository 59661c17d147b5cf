"""fastmnist against PyTorch and JAX on the same epochs: one group per network.

``peers 784-10-10 sgd`` and ``peers 784-128-10 sgd``: float32, batches of 128, SGD lr 0.05,
one shuffled epoch of the 60,000 training images (469 steps), in fastmnist (Numba backend),
PyTorch (the standard loop) and JAX (``jit`` of a ``lax.scan`` over the batches).

``peers 784-256-10 adam onecycle B64``: the fast98 recipe (its network, batch size and
optimizer, Adam with a OneCycle schedule over its epochs), timed on its first epoch: fastmnist
against PyTorch's Adam + OneCycleLR.

PyTorch and JAX are optional: their benchmarks skip when they are not installed. All
contenders start from the same weights; each one's first steps are checked against the NumPy
reference before it is timed.
"""

from dataclasses import dataclass

import numpy as np
import pytest

from fastmnist import recipes
from fastmnist.backends import numba_cpu
from fastmnist.optim import Optimizer, lr_schedule
from fastmnist.tools.harness.peers import jax_data, jax_epoch, torch_data, torch_epoch

from ._common import (
    BATCH,
    check_first_steps,
    copy_params,
    epoch_order,
    fastmnist_epoch,
    n_steps,
    net,
    pedantic,
    validate_epoch,
)


@dataclass(frozen=True)
class Case:
    sizes: tuple
    optimizer: str = "sgd"
    lr: float = 0.05
    onecycle_epochs: int = 0  # > 0: OneCycle over this many epochs, the first one timed
    batch_size: int = BATCH

    @property
    def name(self):
        sched = " onecycle" if self.onecycle_epochs else ""
        batch = "" if self.batch_size == BATCH else f" B{self.batch_size}"
        return f"{'-'.join(map(str, self.sizes))} {self.optimizer}{sched}{batch}"

    def lrs(self, steps):
        if self.onecycle_epochs:
            return lr_schedule("onecycle", self.lr, self.onecycle_epochs * steps)[:steps]
        return np.full(steps, self.lr)


def _recipe_case(name):
    """The Case of a recipe: its network, optimizer, peak lr, schedule and batch size."""
    model, kw = recipes.get(name)
    assert kw["schedule"] == "onecycle" and kw["optimizer"] in ("sgd", "adam"), kw
    return Case(tuple(model.sizes), kw["optimizer"], kw["lr"], kw["epochs"], kw["batch_size"])


SGD_10 = Case((784, 10, 10))
SGD_128 = Case((784, 128, 10))
FAST98 = _recipe_case("fast98")

PARAMS = [pytest.param(case, who, id=f"{who}-{case.name.replace(' ', '-')}")
          for case in (SGD_10, SGD_128, FAST98)
          for who in ("fastmnist", "torch", "jax")
          if not (who == "jax" and case.optimizer != "sgd")]


@pytest.fixture(scope="module")
def torch_tensors(mnist):
    pytest.importorskip("torch")
    return torch_data(mnist.X, mnist.y)


@pytest.fixture(scope="module")
def jax_arrays(mnist):
    pytest.importorskip("jax")
    return jax_data(mnist.X, mnist.y)


@pytest.mark.parametrize("case,who", PARAMS)
def test_peers(benchmark, case, who, mnist, request):
    benchmark.group = f"peers {case.name}"
    opt = Optimizer(case.optimizer)
    order = epoch_order(benchmark, len(mnist.X))
    steps = n_steps(len(order), case.batch_size)
    lrs = case.lrs(steps)
    threads = numba_cpu.n_threads()
    if who == "fastmnist":
        prepared = request.getfixturevalue("prepared")

        def make(params, order, lrs):
            return fastmnist_epoch(numba_cpu, params, opt, prepared, mnist.y, order, lrs,
                                   case.batch_size)
    elif who == "torch":
        tensors = request.getfixturevalue("torch_tensors")
        onecycle = case.onecycle_epochs * steps or None

        def make(params, order, lrs):
            return torch_epoch(params, tensors, order, case.lr, case.optimizer, onecycle,
                               case.batch_size, threads=threads)
    else:
        arrays = request.getfixturevalue("jax_arrays")

        def make(params, order, lrs):
            return jax_epoch(params, arrays, order, case.lr)
    start = net(list(case.sizes))
    check_first_steps(who, make, start, opt, mnist.X, mnist.y, order, lrs,
                      batch_size=case.batch_size)
    epoch = make(copy_params(start), order, lrs)
    seconds = validate_epoch(who, epoch, steps, benchmark, mnist)
    benchmark.extra_info.update(rows=len(order), steps=steps, threads=threads)
    pedantic(benchmark, epoch.run, seconds)
