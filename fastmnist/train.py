"""The training loop: batching, shuffling, optimizers, schedules, history, progress.

It knows nothing of how a kernel is written: each backend's ``train_epoch`` runs a run of
optimizer steps in one call (one compiled call for the Numba backend). The loop cuts each
epoch into chunks of steps so that Ctrl-C stops at the end of the current step chunk with
consistent weights, and checks every chunk for divergence.

:func:`fit` is two steps: :func:`_check_args` checks its arguments into a :class:`_Settings`
(starting and changing nothing), and a :class:`_Run` trains: :meth:`_Run.train` loops over
epochs, :meth:`_Run._run_epoch` over chunks of steps (:meth:`_Run._chunk`, one compiled call
each), and :meth:`_Run._end_epoch` keeps the books after every epoch (history, validation,
progress bar, `on_epoch`, early stopping). An interrupted run leaves a :class:`Checkpoint`.
"""

import contextlib
import dataclasses
import math
import os
import signal
import sys
import threading
import time
import typing

import numpy as np

from . import augment, backends, warmup
from ._blas import blas_threads
from .checks import check_Xy
from .errors import DivergedError, InputError
from .governor import Governor, chunk_steps
from .optim import Optimizer, init_state, lr_schedule

#: the least optimizer steps per compiled call (:func:`fastmnist.governor.chunk_steps` makes
#: calls longer where steps are short); Ctrl-C answers at the end of the call
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
    # int64 already: a copy would cost a fresh array's page faults (0.4 of 0.9 ms for 60,000)
    return rng.permutation(n).astype(np.int64, copy=False)


class _SigintFlag:
    """While active (main thread only), Ctrl-C sets a flag instead of raising mid-step.

    Where SIGINT is ignored (``nohup``, a background job of a script, a program that ignores
    it on purpose) it stays ignored, as Python itself leaves it when it starts that way: no
    handler is installed and the run is not interrupted.
    """

    def __init__(self):
        self.hit = False

    @contextlib.contextmanager
    def active(self):
        if (threading.current_thread() is not threading.main_thread()
                or signal.getsignal(signal.SIGINT) is signal.SIG_IGN):
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
        affine=None, label_smoothing=0.0, max_norm=0.0, dropout=0.0, input_dropout=0.0,
        ema=0.0):
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
        30-50 s of compiling). "wait" compiles them before the first step. "background"
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
    affine : (degrees, scale, shear) or None
        Augmentation: every training row is also warped by a random affine map about the
        image centre, drawn anew for every step as the shifts are: a rotation of up to
        `degrees` either way (at most 45), a scale in [1 - `scale`, 1 + `scale`] (`scale` at
        most 0.45) and a shear of up to `shear` degrees (at most 30), with nearest-neighbour
        interpolation as torchvision's ``RandomAffine`` (:class:`fastmnist.augment.Affine`).
        The shift, if any, applies after the warp. Needs square images. None (the default):
        no warp.
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
    settings = _check_args(
        model, X, y, epochs=epochs, batch_size=batch_size, lr=lr, optimizer=optimizer,
        schedule=schedule, backend=backend, validation_data=validation_data,
        progress=progress, threads=threads, shuffle=shuffle, seed=seed,
        early_stopping=early_stopping, momentum=momentum, beta1=beta1, beta2=beta2, eps=eps,
        weight_decay=weight_decay, on_epoch=on_epoch, compile=compile, shift=shift,
        affine=affine, label_smoothing=label_smoothing, max_norm=max_norm, dropout=dropout,
        input_dropout=input_dropout, ema=ema)
    return _Run(model, settings, checkpoint).train()


class _Settings(typing.NamedTuple):
    """fit's arguments, checked and derived once by :func:`_check_args`."""

    X: np.ndarray             # (n, n_features) training rows, as check_Xy returns them
    y: np.ndarray             # (n,) labels
    validation: tuple         # (X_val (m, n_features), y_val (m,)) checked, or None
    n: int                    # rows
    epochs: int
    batch_size: int           # rows per step (n for full-batch training)
    steps_per_epoch: int
    lrs: np.ndarray           # (epochs * steps_per_epoch,) the learning rate of every step
    opt: Optimizer
    backend: str              # the backend asked for (a "background" compile starts on NumPy)
    compile: str
    seed: object              # int or None: the shuffling, shift and dropout seed
    shuffle: bool
    threads: object           # int or None
    progress: object          # bool or None
    early_stopping: object    # int or None
    on_epoch: object          # callable or None
    ema: float                # the moving average's decay; 0.0: none
    epoch_kw: dict            # train_epoch's keywords for the activation and the tricks
    config: dict              # what model.config records (and ``train --resume`` reruns)


def _is_count(v):
    """Whether v is a positive integer (Python's or NumPy's; not a bool)."""
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v >= 1


def _check_args(model, X, y, *, epochs, batch_size, lr, optimizer, schedule, backend,
                validation_data, progress, threads, shuffle, seed, early_stopping, momentum,
                beta1, beta2, eps, weight_decay, on_epoch, compile, shift, affine,
                label_smoothing, max_norm, dropout, input_dropout, ema):
    """fit's arguments as :class:`_Settings`, or InputError for the first unusable one.

    Starts nothing and changes nothing; the checkpoint is checked against the run later
    (:func:`_check_checkpoint`), once the fresh optimizer state is known.
    """
    X, y = check_Xy(X, y, model.n_features, model.n_classes, model.dtype,
                     model.pixels)
    validation = None
    if validation_data is not None:
        if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
            raise InputError("validation_data must be a pair (X_val, y_val)")
        Xv, yv = validation_data
        validation = check_Xy(Xv, yv, model.n_features, model.n_classes, model.dtype,
                              model.pixels)
    if not _is_count(epochs):
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
    backends.check_name(backend)
    if threads is not None and not _is_count(threads):
        raise InputError(f"threads must be None or a positive integer, got {threads!r}")
    seed = model.seed if seed is None else seed
    shifts = augment.shift_for(shift, model.n_features, seed, affine)
    warp = augment.affine_for(affine)
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
                  shift=int(shift or 0), affine=None if warp is None else list(warp),
                  label_smoothing=label_smoothing, max_norm=max_norm,
                  dropout=float(dropout or 0.0), input_dropout=float(input_dropout or 0.0),
                  ema=ema)
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
    return _Settings(X, y, validation, n, epochs, batch_size, steps_per_epoch, lrs, opt,
                     backend, compile, seed, shuffle, threads, progress, early_stopping,
                     on_epoch, ema, epoch_kw, config)


class _Run:
    """One call of :func:`fit` once its arguments are checked: the loop over epochs and
    chunks of steps (:meth:`train`, :meth:`_run_epoch`, :meth:`_chunk`) and the
    bookkeeping after every epoch (:meth:`_end_epoch`)."""

    def __init__(self, model, settings, checkpoint):
        s = self.s = settings
        self.model = model
        state = init_state(model.params, s.opt)
        if s.ema:  # the average travels as one more slot of the state (and of a checkpoint)
            state = state + [[(W.copy(), b.copy()) for W, b in model.params]]
        history = {k: [] for k in HISTORY_KEYS if s.validation is not None or "val" not in k}
        self.start_epoch, self.start_step, self.t = 0, 0, 0
        self.partial = np.zeros(4)  # loss sum, n_correct, rows, seconds of an interrupted epoch
        if checkpoint is not None:
            (self.start_epoch, self.start_step, self.t, state, history,
             self.partial) = _check_checkpoint(checkpoint, state, history, s.epochs,
                                               s.steps_per_epoch)
        self.state, self.history = state, history
        # a first run: NumPy trains while a subprocess compiles the Numba kernels
        self.compiler = (warmup.start_background(warmup.spec(model.dtype, s.X.dtype,
                                                             model.n_features))
                         if s.backend == "numba" and s.compile == "background" else None)
        self.be = backends.get("numpy" if self.compiler is not None else s.backend)
        model.checkpoint = None
        model.steps_on_numpy = 0
        self.data = self.be.prepare(s.X)
        self.epoch_kw = dict(s.epoch_kw)
        self.averaged = state[-1] if s.ema else None  # the weights' moving average, in place
        self.opt_state = state[:-1] if s.ema else state
        if s.ema:
            self.epoch_kw.update(ema=self.averaged, ema_decay=s.ema)
        model.config = s.config
        self.best = (-1.0, None)  # early stopping: best val_accuracy, its weights
        self.snapshot = None  # the weights at the start of the current chunk of steps
        self.chunks = (0, 0)  # steps of the last two chunks (how far a rollback goes)
        # without a governor: seconds a step of the last whole chunk took (None: not yet
        # measured; the first chunk on a backend is not, it may compile)
        self.per_step, self.first_call = None, True
        self.since_best = 0
        self.flag = _SigintFlag()

    def train(self):
        """Run the remaining epochs; fit's return value."""
        s, model = self.s, self.model
        self.bar = _progress_bar(s.epochs, s.progress, self.start_epoch)
        # Numba's thread count for the run: set when Numba trains (at the switch on a first
        # run, so that the NumPy phase does not import the kernels)
        self.numba_phase = contextlib.ExitStack()
        if s.backend == "numba" and self.compiler is None:
            self.numba_phase.enter_context(self.be.threads(s.threads))
        self.governor = _governor(self.be, s.threads)
        # while a compiler runs on a core, NumPy's BLAS keeps off it (_blas)
        self.numpy_phase = contextlib.ExitStack()
        if self.compiler is not None:
            self.numpy_phase.enter_context(blas_threads(max(1, (os.cpu_count() or 2) - 1)))
        try:
            with self.numba_phase, self.flag.active(), self.numpy_phase:
                for epoch in range(self.start_epoch, s.epochs):
                    first = epoch == self.start_epoch
                    totals = self._run_epoch(epoch, self.start_step if first else 0,
                                             self.partial if first else np.zeros(4))
                    if self._end_epoch(epoch, *totals):
                        break
        finally:
            if self.bar is not None:
                self.bar.close()
        if s.ema:  # the model ends with the averaged weights
            for (W, b), (aW, ab) in zip(model.params, self.averaged):
                W[...] = aW
                b[...] = ab
        model.history = self.history
        model.checkpoint = None
        return self.history

    def _interrupted(self, epoch, step, partial=(0.0, 0, 0, 0.0)):
        """Leave a consistent model and the checkpoint to resume at (epoch, step)."""
        self.model.checkpoint = Checkpoint(epoch=epoch, step=step, t=self.t, state=self.state,
                                           history=self.history, partial=tuple(partial))
        self.model.history = self.history

    def _run_epoch(self, epoch, step, partial):
        """Steps `step`.. of `epoch`, in chunks, continuing `partial` (4,) (the epoch's
        loss sum, correct predictions, rows and seconds so far); returns those totals."""
        s = self.s
        order = epoch_order(s.seed, epoch, s.n, s.shuffle)
        loss_sum, n_correct, rows, seconds = partial
        while step < s.steps_per_epoch:
            if self.compiler is not None and (self.compiler.ready() or self.compiler.failed()):
                self._switch_to_numba()
            stop, losses, correct, took = self._chunk(epoch, order, step)
            seconds += took
            # rows in each step of the chunk: the epoch's last batch may be short
            sizes = np.minimum(s.batch_size, s.n - np.arange(step, stop) * s.batch_size)
            # summed step by step, in order: the same bits however the epoch was cut into
            # chunks (their lengths follow measured times) or interrupted and resumed
            for loss, size in zip(losses.tolist(), sizes.tolist()):
                loss_sum += loss * size
            n_correct += correct
            rows += int(sizes.sum())
            self.t += len(losses)
            step = stop
            if self.flag.hit:
                self._interrupted(epoch, step, (loss_sum, n_correct, rows, seconds))
                raise KeyboardInterrupt
        return loss_sum, n_correct, rows, seconds

    def _switch_to_numba(self):
        """The background compiler is done (or failed: then this process compiles)."""
        self.compiler = None
        self.numpy_phase.close()
        self.be = backends.get(self.s.backend)
        self.numba_phase.enter_context(self.be.threads(self.s.threads))
        self.data = self.be.prepare(self.s.X)
        self.governor = _governor(self.be, self.s.threads)
        self.per_step, self.first_call = None, True

    def _chunk(self, epoch, order, step):
        """One compiled call: steps `step`.. of `epoch` (row order `order` (n,)), as many as
        the governor plans. Returns (stop, losses (stop - step,), correct, seconds).

        Raises DivergedError, with the model rolled back, when the loss or the weights
        became non-finite.
        """
        s, model, governor = self.s, self.model, self.governor
        n_threads, chunk = (governor.plan() if governor else
                            (None, chunk_steps(CHUNK_STEPS, self.per_step)))
        stop = min(step + chunk, s.steps_per_epoch)
        rows_chunk = order[step * s.batch_size:stop * s.batch_size]
        lrs_chunk = s.lrs[self.t:self.t + stop - step]
        previous, self.snapshot = self.snapshot, [(W.copy(), b.copy()) for W, b in model.params]
        t_start = time.perf_counter()
        with self.be.threads(n_threads) if governor else contextlib.nullcontext():
            losses, correct = self.be.train_epoch(model.params, self.opt_state, s.opt,
                                                  self.data, s.y, rows_chunk, s.batch_size,
                                                  lrs_chunk, self.t, **self.epoch_kw)
        took = time.perf_counter() - t_start
        if self.compiler is not None:
            model.steps_on_numpy += len(losses)
        if governor:
            governor.record(n_threads, took, len(losses))
        elif len(losses) == chunk:
            self.per_step = None if self.first_call else took / chunk
        self.first_call = False
        done = len(losses)
        self.chunks = (self.chunks[1], done)
        bad_loss = done and not np.isfinite(losses[-1])
        if bad_loss or not _all_finite(model.params):
            # an update may overflow the weights even when its loss was finite. Roll back
            # to weights that gave a finite loss: the chunk's start, or the previous
            # chunk's when the chunk's first step already failed
            good = previous if done == 1 and bad_loss and previous else self.snapshot
            model.params[:] = good
            model.history = self.history
            what = (f"loss became non-finite ({losses[-1]})" if bad_loss
                    else "weights became non-finite")
            raise DivergedError(
                f"{what} at epoch {epoch + 1}, step {step + done}; lr "
                f"{lrs_chunk[done - 1]:.4g} is probably too high. The model is "
                "rolled back to its last weights with a finite loss (at most "
                f"{sum(self.chunks)} steps back).")
        return stop, losses, correct, took

    def _end_epoch(self, epoch, loss_sum, n_correct, rows, seconds):
        """History, validation, progress bar, on_epoch, early stopping and a Ctrl-C that
        came during them, after `epoch`'s steps. True when early stopping ends the run."""
        s, model, history = self.s, self.model, self.history
        history["loss"].append(float(loss_sum / rows))
        history["accuracy"].append(float(n_correct / rows))
        history["epoch_seconds"].append(float(seconds))
        history["lr"].append(float(s.lrs[self.t - 1]))
        postfix = {"loss": f"{loss_sum / rows:.4f}", "acc": f"{n_correct / rows:.4f}"}
        if s.validation is not None:
            vloss, vacc = evaluate(self.be, self.averaged if s.ema else model.params,
                                   *s.validation, activation=model.activation)
            history["val_loss"].append(vloss)
            history["val_accuracy"].append(vacc)
            postfix["val_acc"] = f"{vacc:.4f}"
        if self.bar is not None:
            self.bar.set_postfix(postfix)
            self.bar.update(1)
        if s.on_epoch is not None:
            try:
                s.on_epoch(epoch, history)
            except KeyboardInterrupt:  # the epoch is complete: resume at the next
                self._interrupted(epoch + 1, 0)
                raise
        if s.early_stopping is not None:
            if history["val_accuracy"][-1] > self.best[0]:
                self.best = (history["val_accuracy"][-1],
                             [(W.copy(), b.copy()) for W, b in model.params])
                self.since_best = 0
            else:
                self.since_best += 1
                if self.since_best >= s.early_stopping:
                    model.params[:] = self.best[1]
                    return True
        if self.flag.hit:  # Ctrl-C during the evaluation: stop here, at the epoch's end
            self._interrupted(epoch + 1, 0)
            raise KeyboardInterrupt
        return False


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
