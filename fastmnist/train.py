"""The training loop: batching, shuffling, optimizers, schedules, history, progress.

It knows nothing of how a kernel is written: each backend's ``train_epoch`` runs a run of
optimizer steps in one call (one compiled call for the Numba backend). The loop cuts each
epoch into chunks of steps so that Ctrl-C stops at the end of the current step chunk with
consistent weights, and checks every chunk for divergence.
"""

import contextlib
import dataclasses
import math
import os
import signal
import sys
import threading
import time

import numpy as np

from . import augment, backends, warmup
from ._blas import blas_threads
from .checks import check_Xy
from .errors import DivergedError, InputError
from .governor import Governor
from .optim import Optimizer, init_state, lr_schedule

#: optimizer steps per compiled call; small enough that Ctrl-C answers quickly
CHUNK_STEPS = 128

#: the choices of fit's `compile`
COMPILE_MODES = ("wait", "background")

HISTORY_KEYS = ("loss", "accuracy", "val_loss", "val_accuracy", "epoch_seconds", "lr")


def epoch_order(seed, epoch, n, shuffle=True):
    """Row order (n,) int64 for `epoch`: a permutation from a generator seeded by (seed, epoch).

    Seeding per epoch makes a resumed run visit the same batches as an uninterrupted one.
    """
    if not shuffle:
        return np.arange(n, dtype=np.int64)
    rng = np.random.default_rng([0 if seed is None else int(seed), int(epoch)])
    return rng.permutation(n).astype(np.int64)


class _SigintFlag:
    """While active (main thread only), Ctrl-C sets a flag instead of raising mid-step."""

    def __init__(self):
        self.hit = False

    @contextlib.contextmanager
    def active(self):
        if threading.current_thread() is not threading.main_thread():
            yield self
            return

        def handler(signum, frame):
            self.hit = True

        previous = signal.signal(signal.SIGINT, handler)
        try:
            yield self
        finally:
            signal.signal(signal.SIGINT, previous)


def _progress_bar(total, progress, initial):
    if progress is None:
        progress = sys.stderr.isatty()
    if not progress:
        return None
    from tqdm.auto import tqdm
    return tqdm(total=total, initial=initial, unit="epoch", leave=True, dynamic_ncols=True)


def evaluate(be, params, X, y, batch=10000, activation="relu"):
    """(mean cross-entropy, accuracy) of the network `params` on X (n, d), y (n,), with the
    backend module `be`, `batch` rows per forward call."""
    loss, correct = 0.0, 0
    for i in range(0, len(X), batch):
        p = be.forward(params, X[i:i + batch], activation)
        yb = y[i:i + batch]
        loss -= float(np.sum(np.log(np.maximum(p[np.arange(len(yb)), yb], 1e-300))))
        correct += int(np.sum(np.argmax(p, axis=1) == yb))
    return loss / len(X), correct / len(X)


def _governor(be, threads):
    """threads=None: each chunk runs on 1 thread or all, whichever is faster now (a busy
    neighbour makes the threads' barriers stall); the results are the same either way."""
    if threads is None and hasattr(be, "threads") and be.n_threads() > 1:
        return Governor(be.n_threads(), CHUNK_STEPS)
    return None


def _all_finite(params):
    return all(np.isfinite(W).all() and np.isfinite(b).all() for W, b in params)


@dataclasses.dataclass(frozen=True, eq=False, repr=False)
class Checkpoint:
    """Where an interrupted :func:`fit` stopped, and all it needs to continue bit for bit.

    :func:`fit` leaves one in ``model.checkpoint`` when Ctrl-C (or a ``KeyboardInterrupt``
    from `on_epoch`) stops it, and continues from one given as ``fit(..., checkpoint=)``.
    ``fastmnist train`` saves it beside the model (:meth:`to_arrays`, the ``extra`` of
    :meth:`fastmnist.MLP.save`) and ``--resume`` reads it back (:meth:`from_arrays`).

    The fields cannot be rebound, but the optimizer state's arrays are not copied: a
    resumed :func:`fit` uses them as they are and updates them in place.

    Parameters
    ----------
    epoch : int
        The epoch to continue in (0-based); ``epochs`` when the run had finished.
    step : int
        Steps of that epoch already taken (0 at an epoch's start).
    t : int
        Optimizer steps taken in the whole run (the index into the learning rate schedule).
    state : list of slots, each a list of (W-like (d_in, d_out), b-like (d_out,)) per layer
        The optimizer's state (:func:`fastmnist.optim.init_state`: none for SGD, velocity
        for momentum, m and v for Adam), then the weights' moving average when fit's `ema`
        is set.
    history : dict of lists
        The complete epochs' history, as :func:`fit` returns it.
    partial : sequence of 4 numbers
        The interrupted epoch's totals so far: loss sum, correct predictions, rows, seconds
        (zeros at an epoch's start).
    """

    epoch: int
    step: int
    t: int
    state: list
    history: dict
    partial: tuple = (0.0, 0, 0, 0.0)

    def __repr__(self):
        return (f"Checkpoint(epoch={self.epoch}, step={self.step}, t={self.t}, "
                f"{len(self.state)} state slots, {len(next(iter(self.history.values()), []))} "
                "epochs of history)")

    def to_arrays(self):
        """Named arrays for a .npz: ``epoch``, ``step``, ``t`` (int64 scalars), ``partial``
        (4,) float64 and ``state_{slot}_{layer}_{0 for W, 1 for b}``. The history is not
        among them: it is saved with the model."""
        out = {k: np.asarray(getattr(self, k), dtype=np.int64) for k in ("epoch", "step", "t")}
        out["partial"] = np.asarray(self.partial, dtype=np.float64)
        for s, slot in enumerate(self.state):
            for i, pair in enumerate(slot):
                for j, arr in enumerate(pair):
                    out[f"state_{s}_{i}_{j}"] = arr
        return out

    @classmethod
    def from_arrays(cls, arrays, history, n_layers):
        """Inverse of :meth:`to_arrays`: `arrays` as it made them (``extra`` of
        :meth:`fastmnist.MLP.load`), `history` the saved model's, `n_layers` its layer count.

        Raises InputError when `arrays` is not a checkpoint's.
        """
        try:
            epoch, step, t = (int(arrays[k]) for k in ("epoch", "step", "t"))
            partial = np.asarray(arrays["partial"], dtype=np.float64)
            n_slots = len({k.split("_")[1] for k in arrays if k.startswith("state_")})
            state = [[tuple(np.array(arrays[f"state_{s}_{i}_{j}"]) for j in (0, 1))
                      for i in range(n_layers)] for s in range(n_slots)]
        except KeyError as e:
            raise InputError(f"not a training checkpoint: missing {e}") from None
        except (TypeError, ValueError) as e:
            raise InputError(f"malformed training checkpoint ({e})") from None
        return cls(epoch=epoch, step=step, t=t, state=state,
                   history={k: list(v) for k, v in history.items()}, partial=partial)


def fit(model, X, y, *, epochs=5, batch_size=128, lr=0.1, optimizer="sgd", schedule=None,
        backend="numba", validation_data=None, progress=None, threads=None, shuffle=True,
        seed=None, early_stopping=None, momentum=0.9, beta1=0.9, beta2=0.999, eps=1e-8,
        weight_decay=0.0, checkpoint=None, on_epoch=None, compile="wait", shift=0,
        label_smoothing=0.0, max_norm=0.0, dropout=0.0, input_dropout=0.0, ema=0.0):
    """Train `model` in place on X, y.

    Parameters
    ----------
    model : fastmnist.MLP
    X : ndarray (n, n_features), uint8 (scaled by 1/255 inside the kernels), integers in
        0..255, or float in [0, 1] (any finite values with ``MLP(pixels=False)``)
    y : ndarray (n,) of integer labels
    epochs : int
        Passes over the data. With full-batch training an epoch is one gradient step.
    batch_size : int or None
        Rows per step; None (or >= n) means full-batch gradient descent.
    lr : float
        Learning rate (the peak for "onecycle").
    optimizer : {"sgd", "momentum", "adam"}
    schedule : {None, "constant", "cosine", "onecycle", "linear", "step"}
        Learning rate over the whole run, per step (see :func:`fastmnist.optim.lr_schedule`).
    backend : {"numba", "numpy"}
    validation_data : (X_val, y_val), optional
        Scored after every epoch into ``val_loss`` and ``val_accuracy``.
    progress : bool or None
        A tqdm bar over epochs; None shows it only when stderr is a terminal.
    threads : int or None
        Threads for the Numba backend. None: each chunk of steps runs on one thread or on
        all, whichever :class:`fastmnist.governor.Governor` measured faster lately (a busy
        neighbour process makes the threads' barriers stall). Results are bit-identical for a
        fixed seed whatever the thread count. Dense inputs (``MODE_GEMM``) run their products
        in NumPy's BLAS on a thread count fixed per machine, whatever this says.
    shuffle : bool
        Shuffle rows every epoch (a permutation seeded by ``(seed, epoch)``).
    seed : int or None
        Shuffling seed; defaults to the model's seed.
    early_stopping : int or None
        Stop when ``val_accuracy`` has not improved for this many epochs, and restore the
        best weights. Needs `validation_data`.
    momentum, beta1, beta2, eps, weight_decay : float
        Optimizer hyperparameters (see :class:`fastmnist.optim.Optimizer`).
    checkpoint : Checkpoint or None
        Training state from an interrupted run (``model.checkpoint``, or
        :meth:`Checkpoint.from_arrays` as ``fastmnist train --resume`` reads it) to continue
        from; the result equals the uninterrupted run's. Its optimizer state is updated in
        place.
    on_epoch : callable or None
        Called as ``on_epoch(epoch_index, history)`` after every epoch.
    compile : {"wait", "background"}
        With the Numba backend, when its kernels are not in Numba's cache yet (a first run:
        20-40 s of compiling). "wait" compiles them before the first step. "background"
        compiles them in a subprocess (:mod:`fastmnist.warmup`) and trains with the NumPy
        backend meanwhile, switching to Numba at the first chunk of steps after they are
        ready; the run's results then equal a waiting run's within the backends' parity
        tolerance instead of bit for bit. ``model.steps_on_numpy`` counts the steps that
        ran on NumPy. With cached kernels both do the same.
    shift : int
        Augmentation: every training row is moved by a random shift of up to `shift` pixels
        in each direction (uniform in [-shift, shift] rows and columns, drawn anew for every
        step from ``(seed, step, row)``: :mod:`fastmnist.augment`), inside the compiled
        epoch, without a copy of the data. Needs square images (784 = 28 x 28 features).
        0 (the default) trains on the rows as they are.
    label_smoothing : float in [0, 1)
        Train against the smoothed targets (1 - label_smoothing) onehot(y) +
        label_smoothing / n_classes instead of onehot(y) (0, the default: none). The
        reported training loss is then the smoothed cross-entropy.
    max_norm : float >= 0
        The max-norm constraint: after every update, each unit's incoming weights (each
        column of every W) are scaled down to Euclidean norm `max_norm` where longer (0, the
        default: none).
    dropout, input_dropout : float in [0, 1)
        Inverted dropout of every hidden layer's outputs (ReLU models) and of the input
        pixels: each unit is kept with probability 1 - rate and then multiplied by
        1 / (1 - rate), in training only. The masks are drawn from ``(seed, step, row, unit)``
        (:mod:`fastmnist.augment`): the same in both backends and on any thread count.
        0 (the default): none.
    ema : float in [0, 1)
        Keep an exponential moving average of the weights, updated after every step with
        this decay (w_avg += (1 - ema) * (w - w_avg), from the initial weights). Validation
        scores it, and the model ends with it (what it saves and predicts with); a
        checkpoint carries it. Not with `early_stopping`. 0 (the default): none.

    Returns
    -------
    history : dict of lists, one entry per epoch: ``loss`` (mean training loss),
        ``accuracy`` (training accuracy, measured on the fly before each update),
        ``val_loss``, ``val_accuracy`` (with validation data), ``epoch_seconds`` (training
        time, evaluation excluded), ``lr`` (learning rate of the epoch's last step).

    Raises
    ------
    DivergedError
        A step produced a non-finite loss or weights; the model is rolled back to its last
        weights that gave a finite loss (the start of this chunk of steps or the previous one).
    KeyboardInterrupt
        Re-raised after Ctrl-C, once the current chunk of steps has finished; the model and
        ``model.history`` are consistent, and ``model.checkpoint`` can resume the run.
    """
    X, y = check_Xy(X, y, model.n_features, model.n_classes, model.dtype,
                     model.pixels)
    if validation_data is not None:
        if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
            raise InputError("validation_data must be a pair (X_val, y_val)")
        Xv, yv = validation_data
        Xv, yv = check_Xy(Xv, yv, model.n_features, model.n_classes, model.dtype,
                           model.pixels)
    if (not isinstance(epochs, (int, np.integer)) or isinstance(epochs, bool)
            or epochs < 1):
        raise InputError(f"epochs must be a positive integer, got {epochs!r}")
    if isinstance(lr, (np.floating, np.integer)):
        lr = float(lr)  # a NumPy scalar is as good as a Python number
    n = len(X)
    if batch_size is None or batch_size >= n:
        batch_size = n
    if not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise InputError(f"batch_size must be a positive integer or None, got {batch_size!r}")
    if early_stopping is not None and validation_data is None:
        raise InputError("early_stopping needs validation_data")
    if compile not in COMPILE_MODES:
        raise InputError(f"compile must be one of {COMPILE_MODES}, got {compile!r}")
    opt = Optimizer(optimizer, momentum=momentum, beta1=beta1, beta2=beta2, eps=eps,
                    weight_decay=weight_decay)
    be = backends.get(backend)
    # a first run: NumPy trains while a subprocess compiles the Numba kernels
    compiler = (warmup.start_background(warmup.spec(model.dtype, X.dtype, model.n_features))
                if backend == "numba" and compile == "background" else None)
    if compiler is not None:
        be = backends.get("numpy")
    seed = model.seed if seed is None else seed
    shifts = augment.shift_for(shift, model.n_features, seed)
    label_smoothing = backends.check_smoothing(label_smoothing)
    max_norm = backends.check_max_norm(max_norm)
    drop = augment.dropout_for(dropout, input_dropout, seed, model.activation)
    ema = backends.check_ema(ema)
    if ema and early_stopping is not None:
        raise InputError("ema and early_stopping do not combine yet; choose one")
    steps_per_epoch = math.ceil(n / batch_size)
    lrs = lr_schedule(schedule, lr, epochs * steps_per_epoch)
    config = dict(epochs=int(epochs), batch_size=int(batch_size), lr=float(lr),
                  optimizer=optimizer, schedule=schedule, backend=backend, shuffle=shuffle,
                  seed=seed, momentum=momentum, beta1=beta1, beta2=beta2, eps=eps,
                  weight_decay=weight_decay, threads=threads, early_stopping=early_stopping,
                  shift=int(shift or 0), label_smoothing=label_smoothing, max_norm=max_norm,
                  dropout=float(dropout or 0.0), input_dropout=float(input_dropout or 0.0),
                  ema=ema)

    state = init_state(model.params, opt)
    if ema:  # the average travels as one more slot of the state (and of a checkpoint)
        state = state + [[(W.copy(), b.copy()) for W, b in model.params]]
    history = {k: [] for k in HISTORY_KEYS if validation_data is not None or "val" not in k}
    start_epoch, start_step, t = 0, 0, 0
    partial = np.zeros(4)  # loss sum, n_correct, rows, seconds of an interrupted epoch
    if checkpoint is not None:
        start_epoch, start_step, t, state, history, partial = _check_checkpoint(
            checkpoint, state, history, epochs, steps_per_epoch)
    model.checkpoint = None
    model.steps_on_numpy = 0

    data = be.prepare(X)
    # the activation only when it is not the default (a ReLU model calls train_epoch as
    # before), the other tricks only when asked for
    epoch_kw = {} if model.activation == "relu" else {"activation": model.activation}
    if shifts is not None:
        epoch_kw["shift"] = shifts
    if label_smoothing:
        epoch_kw["label_smoothing"] = label_smoothing
    if max_norm:
        epoch_kw["max_norm"] = max_norm
    if drop is not None:
        epoch_kw["dropout"] = drop
    averaged = state[-1] if ema else None  # the weights' moving average, updated in place
    opt_state = state[:-1] if ema else state
    if ema:
        epoch_kw.update(ema=averaged, ema_decay=ema)
    model.config = config
    best = (-1.0, None)
    snapshot = None  # the weights at the start of the current chunk of steps
    since_best = 0
    flag = _SigintFlag()
    bar = _progress_bar(epochs, progress, start_epoch)
    thread_ctx = (backends.get(backend).threads(threads) if backend == "numba"
                  else contextlib.nullcontext())
    governor = _governor(be, threads)

    def interrupted(epoch, step, partial=(0.0, 0, 0, 0.0)):
        """Leave a consistent model and the checkpoint to resume at (epoch, step)."""
        model.checkpoint = Checkpoint(epoch=epoch, step=step, t=t, state=state,
                                      history=history, partial=tuple(partial))
        model.history = history

    # while a compiler runs on a core, NumPy's BLAS keeps off it (_blas)
    numpy_phase = contextlib.ExitStack()
    if compiler is not None:
        numpy_phase.enter_context(blas_threads(max(1, (os.cpu_count() or 2) - 1)))
    try:
        with thread_ctx, flag.active(), numpy_phase:
            for epoch in range(start_epoch, epochs):
                order = epoch_order(seed, epoch, n, shuffle)
                step = start_step if epoch == start_epoch else 0
                loss_sum, n_correct, rows, seconds = partial
                partial = np.zeros(4)
                while step < steps_per_epoch:
                    if compiler is not None and (compiler.ready() or compiler.failed()):
                        # compiled (or the compiler failed: then this process compiles)
                        compiler = None
                        numpy_phase.close()
                        be = backends.get(backend)
                        data = be.prepare(X)
                        governor = _governor(be, threads)
                    n_threads, chunk = governor.plan() if governor else (None, CHUNK_STEPS)
                    stop = min(step + chunk, steps_per_epoch)
                    rows_chunk = order[step * batch_size:stop * batch_size]
                    lrs_chunk = lrs[t:t + stop - step]
                    previous, snapshot = snapshot, [(W.copy(), b.copy()) for W, b in model.params]
                    t_start = time.perf_counter()
                    with be.threads(n_threads) if governor else contextlib.nullcontext():
                        losses, correct = be.train_epoch(model.params, opt_state, opt, data, y,
                                                         rows_chunk, batch_size, lrs_chunk, t,
                                                         **epoch_kw)
                    took = time.perf_counter() - t_start
                    seconds += took
                    if compiler is not None:
                        model.steps_on_numpy += len(losses)
                    if governor:
                        governor.record(n_threads, took, len(losses))
                    done = len(losses)
                    bad_loss = done and not np.isfinite(losses[-1])
                    if bad_loss or not _all_finite(model.params):
                        # an update may overflow the weights even when its loss was finite.
                        # Roll back to weights that gave a finite loss: the chunk's start, or
                        # the previous chunk's when the chunk's first step already failed
                        good = previous if done == 1 and bad_loss and previous else snapshot
                        model.params[:] = good
                        model.history = history
                        what = (f"loss became non-finite ({losses[-1]})" if bad_loss
                                else "weights became non-finite")
                        raise DivergedError(
                            f"{what} at epoch {epoch + 1}, step {step + done}; lr "
                            f"{lrs_chunk[done - 1]:.4g} is probably too high. The model is "
                            "rolled back to its last weights with a finite loss (at most "
                            f"{2 * CHUNK_STEPS} steps back).")
                    # rows in each step of the chunk: the epoch's last batch may be short
                    sizes = np.minimum(batch_size, n - np.arange(step, stop) * batch_size)
                    loss_sum += float(np.dot(losses, sizes))
                    n_correct += correct
                    rows += int(sizes.sum())
                    t += done
                    step = stop
                    if flag.hit:
                        interrupted(epoch, step, (loss_sum, n_correct, rows, seconds))
                        raise KeyboardInterrupt
                history["loss"].append(float(loss_sum / rows))
                history["accuracy"].append(float(n_correct / rows))
                history["epoch_seconds"].append(float(seconds))
                history["lr"].append(float(lrs[t - 1]))
                postfix = {"loss": f"{loss_sum / rows:.4f}", "acc": f"{n_correct / rows:.4f}"}
                if validation_data is not None:
                    vloss, vacc = evaluate(be, averaged if ema else model.params, Xv, yv,
                                            activation=model.activation)
                    history["val_loss"].append(vloss)
                    history["val_accuracy"].append(vacc)
                    postfix["val_acc"] = f"{vacc:.4f}"
                if bar is not None:
                    bar.set_postfix(postfix)
                    bar.update(1)
                if on_epoch is not None:
                    try:
                        on_epoch(epoch, history)
                    except KeyboardInterrupt:  # the epoch is complete: resume at the next
                        interrupted(epoch + 1, 0)
                        raise
                if early_stopping is not None:
                    if history["val_accuracy"][-1] > best[0]:
                        best = (history["val_accuracy"][-1],
                                [(W.copy(), b.copy()) for W, b in model.params])
                        since_best = 0
                    else:
                        since_best += 1
                        if since_best >= early_stopping:
                            model.params[:] = best[1]
                            break
                if flag.hit:  # Ctrl-C during the evaluation: stop here, at the epoch's end
                    interrupted(epoch + 1, 0)
                    raise KeyboardInterrupt
    finally:
        if bar is not None:
            bar.close()
    if ema:  # the model ends with the averaged weights
        for (W, b), (aW, ab) in zip(model.params, averaged):
            W[...] = aW
            b[...] = ab
    model.history = history
    model.checkpoint = None
    return history


def _check_checkpoint(ckpt, fresh_state, fresh_history, epochs, steps_per_epoch):
    """Unpack a training :class:`Checkpoint`, refusing one that does not fit this run.

    The optimizer state is used as it is, and updated in place (not copied: a caller can
    carry it from one ``fit`` to the next).
    """
    if not isinstance(ckpt, Checkpoint):
        raise InputError("not a usable training checkpoint: expected a fastmnist.train."
                         f"Checkpoint, got {type(ckpt).__name__}")
    try:
        epoch, step, t = (int(v) for v in (ckpt.epoch, ckpt.step, ckpt.t))
        state = ckpt.state
        history = {k: list(v) for k, v in ckpt.history.items()}
        partial = np.asarray(ckpt.partial, dtype=np.float64).copy()
        shapes = [[(a.shape, a.dtype) for a in pair] for slot in state for pair in slot]
    except (AttributeError, KeyError, TypeError, ValueError) as e:
        raise InputError(f"not a usable training checkpoint ({type(e).__name__}: {e})") from None
    problems = []
    total = epochs * steps_per_epoch
    if not (0 <= epoch <= epochs and 0 <= step <= steps_per_epoch and 0 <= t
            and (epoch < epochs or step == 0)
            and t + (epochs - epoch) * steps_per_epoch - step <= total):
        problems.append(f"position epoch {epoch}, step {step}, t {t} does not fit {epochs} "
                        f"epochs of {steps_per_epoch} steps (different data or batch size?)")
    # a state that does not match would make the compiled kernels read past their buffers
    if shapes != [[(a.shape, a.dtype) for a in pair] for slot in fresh_state for pair in slot]:
        problems.append("its optimizer state does not match the model and optimizer")
    if set(history) != set(fresh_history):
        problems.append(f"its history has keys {sorted(history)}, expected "
                        f"{sorted(fresh_history)} (validation data given or not?)")
    elif len({len(v) for v in history.values()}) > 1:
        problems.append("its history lists have different lengths")
    if partial.shape != (4,):
        problems.append("its partial-epoch totals are malformed")
    if problems:
        raise InputError("cannot resume from this checkpoint: " + "; ".join(problems))
    return epoch, step, t, state, history, partial
