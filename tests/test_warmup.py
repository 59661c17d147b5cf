"""A first run that trains while the kernels compile (fastmnist.warmup, fit(compile=...))."""

import json
import os
import re
import subprocess
import sys
import time

import background
import numba
import numpy as np
import pytest
from conftest import learnable
from tolerances import STEPS_ATOL_F64

from fastmnist import MLP, train, warmup
from fastmnist._blas import _functions, blas_threads
from fastmnist.backends import columns, numba_cpu
from fastmnist.errors import InputError


class _ReadyAfter:
    """A stand-in for warmup.Background whose kernels are ready at the k-th question."""

    def __init__(self, k, failed=False):
        self.k, self.asked, self._failed = k, 0, failed

    def ready(self):
        self.asked += 1
        return not self._failed and self.asked > self.k

    def failed(self):
        return self._failed


def _fit(compile, monkeypatch=None, fake=None, epochs=2):
    X, y = learnable(400, seed=3)
    model = MLP(hidden=(24,), dtype="float64", seed=1)
    if fake is not None:
        monkeypatch.setattr(warmup, "start_background", lambda s: fake)
    model.fit(X, y, epochs=epochs, batch_size=20, lr=0.01, optimizer="adam",
              schedule="onecycle", compile=compile, validation_data=(X[:100], y[:100]),
              progress=False)
    return model


@pytest.mark.parametrize("k", [0, 1, 3, 5, 100])
def test_switching_backends_mid_run_matches_a_waiting_run(monkeypatch, k):
    """NumPy for the chunks before the kernels are ready, Numba after: the weights equal a run
    that waited for the compiler, within the parity tolerance of 20 float64 steps."""
    monkeypatch.setattr(train, "CHUNK_STEPS", 6)  # 20 steps an epoch: switches mid-epoch
    monkeypatch.setattr("fastmnist.governor.CHUNK_SECONDS", 0)  # just those
    waited = _fit("wait")
    fake = _ReadyAfter(k)
    switched = _fit("background", monkeypatch, fake)
    assert switched.steps_on_numpy == sum([6, 6, 6, 2, 6, 6, 6, 2][:k])  # chunks of steps
    assert waited.steps_on_numpy == 0
    for (W, b), (W2, b2) in zip(waited.params, switched.params):
        np.testing.assert_allclose(W2, W, rtol=0, atol=STEPS_ATOL_F64 * 40)
        np.testing.assert_allclose(b2, b, rtol=0, atol=STEPS_ATOL_F64 * 40)
    for key in ("loss", "accuracy", "val_loss", "val_accuracy", "lr"):
        np.testing.assert_allclose(switched.history[key], waited.history[key], rtol=1e-9)


def test_a_failed_compiler_falls_back_to_compiling_here(monkeypatch):
    fake = _ReadyAfter(0, failed=True)
    model = _fit("background", monkeypatch, fake)
    assert model.steps_on_numpy == 0
    np.testing.assert_array_equal(model.params[0][0], _fit("wait").params[0][0])


def test_compile_is_checked():
    X, y = learnable(40)
    with pytest.raises(InputError, match="compile must be one of"):
        MLP(hidden=(4,)).fit(X, y, epochs=1, compile="later")


def test_refused_arguments_start_no_compiler(monkeypatch):
    """fit checks every argument, the checkpoint included, before it starts a compiler."""
    started = []
    monkeypatch.setattr(warmup, "start_background", lambda s: started.append(s))
    X, y = learnable(40)
    for bad in (dict(label_smoothing=2.0), dict(ema=0.5, early_stopping=1,
                                                validation_data=(X, y)),
                dict(checkpoint={"epoch": 1})):
        with pytest.raises(InputError):
            MLP(hidden=(4,)).fit(X, y, epochs=1, compile="background", **bad)
    assert not started


def test_cached_kernels_start_no_compiler(monkeypatch):
    """With the spec compiled (its marker present), background mode is the waiting run."""
    s = warmup.spec("float64", np.uint8, 784)
    warmup.compile_spec(s)
    assert warmup.is_cached(s)
    # both ways of splitting a step were compiled: by rows and, on two cores, by units
    assert numba_cpu._run_steps.signatures
    assert columns.run_steps.signatures or numba.config.NUMBA_NUM_THREADS < 2
    assert warmup.start_background(s) is None
    started = []
    monkeypatch.setattr(subprocess, "Popen", lambda *a, **k: started.append(a))
    model = _fit("background")
    assert model.steps_on_numpy == 0 and not started


def test_spec_is_what_the_kernels_are_compiled_for():
    assert warmup.spec("float32", np.int64, 784) == warmup.spec("float32", np.float32, 784)
    assert warmup.spec("float32", np.uint8, 784)["x_dtype"] == "uint8"
    assert warmup.spec(np.float64, np.float32, 30)["x_dtype"] == "float64"
    assert warmup._key(warmup.spec("float32", np.uint8, 784)) == warmup._key(
        warmup.spec("float32", np.uint8, 30))  # same index dtype, same kernels
    assert warmup._key(warmup.spec("float32", np.uint8, 784)) != warmup._key(
        warmup.spec("float32", np.uint8, 70000))
    assert warmup._key(warmup.spec("float32", np.uint8, 784)) != warmup._key(
        warmup.spec("float64", np.uint8, 784))


def test_lock_of_a_live_process_only(tmp_path):
    lock = tmp_path / "x.lock"
    lock.write_text(f"{os.getpid()}\n")
    assert warmup._compiling_elsewhere(str(lock))
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    lock.write_text(f"{dead.pid}\n")
    assert not warmup._compiling_elsewhere(str(lock))
    lock.write_text("garbage")
    assert not warmup._compiling_elsewhere(str(lock))
    lock.write_text(f"{os.getpid()}\n")
    old = time.time() - warmup.STALE_LOCK_S - 5
    os.utime(lock, (old, old))
    assert not warmup._compiling_elsewhere(str(lock))
    assert not warmup._compiling_elsewhere(str(tmp_path / "missing.lock"))


def test_background_failed_when_the_compiler_exits_without_kernels():
    s = warmup.spec("float32", np.float32, 12345)  # a spec no test compiles
    process = subprocess.Popen([sys.executable, "-c", "raise SystemExit(1)"])
    process.wait()
    bg = warmup.Background(s, process)
    assert bg.failed() and not bg.ready()


@pytest.mark.skipif(_functions() is None, reason="NumPy's BLAS is not an OpenBLAS found here")
def test_blas_threads_sets_and_restores():
    set_fn, get_fn = _functions()
    before = get_fn()
    with blas_threads(1) as n:
        assert n == 1 == get_fn()
    assert get_fn() == before


_FIRST_RUN = """
import json, sys, time
import numpy as np
from fastmnist import MLP, warmup
X = (np.arange(200 * 50).reshape(200, 50) % 7 == 0).astype(np.uint8) * 200
y = np.arange(200) % 3
model = MLP(hidden=(8,), dtype="float32", n_features=50, n_classes=3)
model.fit(X, y, epochs=2, batch_size=50, lr=0.01, optimizer="adam", compile="background",
          progress=False)
s = warmup.spec("float32", X.dtype, 50)
cached_at_end = warmup.is_cached(s)
t0 = time.time()
while not warmup.is_cached(s) and time.time() - t0 < 600:
    time.sleep(0.5)
print(json.dumps(dict(numpy_steps=model.steps_on_numpy, cached_at_end=cached_at_end,
                      cached=warmup.is_cached(s))))
"""


@background.job(cost=100)
def first_and_second_run(folder):
    env = background.env(NUMBA_CACHE_DIR=os.path.join(folder, "cache"))
    return [background.run([sys.executable, "-c", _FIRST_RUN], env=env, timeout=900)
            for _ in range(2)]


@pytest.mark.slow
@pytest.mark.background(first_and_second_run)
def test_first_run_trains_on_numpy_and_leaves_the_cache_filled():
    """The real thing, in fresh processes with an empty Numba cache: the first fit trains
    on NumPy while a subprocess compiles; the compiler outlives it and fills the cache, and
    the next process's fit runs on Numba from the first step."""
    first, second = first_and_second_run.result()
    assert first.returncode == 0, first.stderr
    out = json.loads(first.stdout.splitlines()[-1])
    assert out["numpy_steps"] == 8 and not out["cached_at_end"] and out["cached"]
    assert second.returncode == 0, second.stderr
    assert json.loads(second.stdout.splitlines()[-1]) == dict(
        numpy_steps=0, cached_at_end=True, cached=True)


@pytest.mark.skipif(not os.access("/proc/self/autogroup", os.W_OK),
                    reason="no autogroups to set here (Linux with CONFIG_SCHED_AUTOGROUP)")
def test_the_compiler_steps_back_as_a_group_too():
    """The background compiler runs in a session, so an autogroup, of its own: its nice
    must be the group's too, or it takes a full share of the CPUs from the training."""
    code = ("import os; from fastmnist import warmup; before = os.nice(0); warmup.step_back(); "
            "print(os.nice(0) - before, open('/proc/self/autogroup').read().split()[-1])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         start_new_session=True, timeout=120)
    assert out.returncode == 0, out.stderr
    process_nice, group_nice = out.stdout.split()
    assert int(process_nice) == min(warmup.NICE, 19 - (os.nice(0)))
    assert int(group_nice) == warmup.NICE


_NUMPY_PHASE = """
import sys
import numpy as np
from fastmnist import MLP, warmup
from fastmnist.cli import build_parser

class Never:
    def ready(self):
        return False

    def failed(self):
        return False

build_parser()
warmup.start_background = lambda s: Never()
X = np.random.default_rng(0).integers(0, 256, (200, 784)).astype(np.uint8)
model = MLP(hidden=(8,))
model.fit(X, np.arange(200) % 10, epochs=2, batch_size=50, compile="background",
          threads=1, progress=False)
model.score(X, np.arange(200) % 10)
assert model.steps_on_numpy == 8
print("numba_cpu" in " ".join(sys.modules))
"""


def test_a_first_runs_numpy_phase_does_not_import_the_kernels(tmp_path):
    """While the kernels compile elsewhere, neither the CLI's parser, fit nor score (with
    nothing cached) imports the Numba backend, whose import costs a first run about a second
    (its self-test compiles)."""
    out = subprocess.run([sys.executable, "-c", _NUMPY_PHASE], capture_output=True, text=True,
                         timeout=300, env=dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path)))
    assert out.returncode == 0, out.stderr
    assert out.stdout.split()[-1] == "False"


def test_cli_first_run_trains_with_numpy_and_says_so(monkeypatch, capsys, tmp_path):
    """`fastmnist train` with kernels that are not cached ('auto'): announced, NumPy steps
    counted, scored with NumPy while the compiler still runs; with them cached: the warm-up."""
    from fastmnist.cli import main
    from fastmnist.tools.commands import train as train_cmd
    _make_fake_mnist(tmp_path, monkeypatch)
    monkeypatch.setenv("FASTMNIST_COMPILE", "auto")
    monkeypatch.setattr(warmup, "is_cached", lambda s: False)
    monkeypatch.setattr(warmup, "start_background", lambda s: _ReadyAfter(10 ** 9))
    scored = []
    real_score = MLP.score
    monkeypatch.setattr(MLP, "score", lambda self, X, y, backend="numpy", **k: (
        scored.append(backend), real_score(self, X, y, backend=backend, **k))[-1])
    assert main(["train", "--hidden", "8", "--epochs", "2", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert train_cmd.BACKGROUND in out and "kernels: loaded" not in out
    assert "kernels: 20 steps ran on NumPy while they compiled" in out  # 600 rows / 64 * 2
    assert "still compiling in the background" in out and scored == ["numpy"]
    monkeypatch.setattr(warmup, "is_cached", lambda s: True)
    scored.clear()
    assert main(["train", "--hidden", "8", "--epochs", "2", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert train_cmd.BACKGROUND not in out  # the warm-up, which may compile in this process
    assert re.search(r"kernels: (loaded from the cache|compiled) in", out)
    assert scored == ["numba"]


def test_cli_compile_mode_from_the_environment(monkeypatch, capsys, tmp_path):
    from fastmnist.cli import main
    _make_fake_mnist(tmp_path, monkeypatch)
    monkeypatch.setenv("FASTMNIST_COMPILE", "soon")
    assert main(["train", "--hidden", "8", "--epochs", "1", "--no-progress"]) == 2
    assert "FASTMNIST_COMPILE must be one of auto, wait, background" in capsys.readouterr().err


def test_cli_compile_command(capsys):
    from fastmnist.cli import main
    assert main(["compile", "--dtype", "float64"]) == 0
    assert main(["compile", "--dtype", "float64"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[-1] == "kernels for float64 parameters, uint8 inputs: in the cache already"
    assert warmup.is_cached(warmup.spec("float64", np.uint8, 784))


def _make_fake_mnist(tmp_path, monkeypatch):
    import test_cli
    return test_cli.fake_mnist.__wrapped__(tmp_path, monkeypatch)
