"""NumPy reference backend: the ground truth, written for clarity rather than speed (but for
Adam's update, in place: a first run trains on this backend while the kernels compile).

Dimensions: ``n`` batch rows, ``d_in`` input features, ``d_out`` output features,
``C`` classes. Parameters are a list of ``(W, b)`` with ``W (d_in, d_out)`` and ``b (d_out,)``;
hidden layers use an activation (ReLU unless told: code 0 of ``backends.ACTIVATIONS``), the
last layer is softmax. The loss is the mean cross-entropy.
"""

import numpy as np

from .. import augment
from ..optim import Optimizer, flush_small, flush_steps, grad_flush_threshold
from . import activation_code, check_ema, check_max_norm, check_smoothing, output_code

#: uint8 pixels are multiplied by this (in the parameters' dtype) on the way in
SCALE = 1.0 / 255.0


def as_float(x, dtype):
    """x (n, d) uint8 or float -> float `dtype`, uint8 scaled by 1/255."""
    if isinstance(x, Scaled):
        return x.values.astype(dtype) * dtype.type(x.scale)
    if x.dtype == np.uint8:
        return x.astype(dtype) * dtype.type(SCALE)
    return np.asarray(x, dtype=dtype)


class Scaled:
    """uint8 rows x (n, d) and the factor they are multiplied by on the way in (from
    :func:`prepare` with a scale other than the default 1/255)."""

    def __init__(self, values, scale):
        self.values, self.scale = values, float(scale)
        self.dtype = values.dtype

    def __len__(self):
        return len(self.values)

    def __getitem__(self, rows):
        return Scaled(self.values[rows], self.scale)


# ---- single ops: forward and backward side by side ----------------------------------------

def relu(z):
    """a = max(z, 0); z, a (n, d)."""
    return np.maximum(z, z.dtype.type(0))


def relu_backward(da, a):
    """dz = da where the unit was active (a > 0); da, a (n, d)."""
    return da * (a > 0)


def logistic(z):
    """a = 1 / (1 + exp(-z)), computed without overflow for any sign of z; z, a (n, d)."""
    e = np.exp(-np.abs(z))  # in (0, 1]
    return np.where(z >= 0, 1 / (1 + e), e / (1 + e)).astype(z.dtype, copy=False)


def activate(z, activation):
    """a (n, d) = f(z) for the hidden activation f (name or code): relu, tanh, logistic,
    identity (a copy of z)."""
    act = activation_code(activation)
    if act == 0:
        return relu(z)
    if act == 1:
        return np.tanh(z)
    if act == 2:
        return logistic(z)
    return z.copy()


def activate_backward(da, a, activation):
    """dz (n, d) = da * f'(z), written with the activation's output a = f(z): ReLU (a > 0),
    tanh 1 - a**2, logistic a (1 - a), identity 1."""
    act = activation_code(activation)
    if act == 0:
        return relu_backward(da, a)
    if act == 1:
        return da * (1 - a * a)
    if act == 2:
        return da * (a * (1 - a))
    return da.copy()


def softmax(z):
    """Row-wise softmax, shifted by the row max so that huge logits do not overflow."""
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def crossentropy(z, y):
    """Mean cross-entropy of logits z (n, C) against labels y (n,), via log-sum-exp."""
    m = z.max(axis=1)
    lse = m + np.log(np.exp(z - m[:, None]).sum(axis=1))
    return float(np.mean(lse - z[np.arange(len(y)), y]))


def crossentropy_softmax_backward(p, y):
    """dz (n, C) of the mean cross-entropy of softmax(z) w.r.t. z: ``(p - onehot(y)) / n``.

    d/dz_j of -log p_y = p_j - [j == y], since d log sum_k exp z_k / dz_j = p_j.
    """
    dz = p.copy()
    dz[np.arange(len(y)), y] -= 1
    return dz / dz.dtype.type(len(y))


def linear(x, W, b):
    """z = x @ W + b; x (n, d_in) uint8 or float, W (d_in, d_out), b (d_out,) -> z (n, d_out)."""
    return as_float(x, W.dtype) @ W + b


def linear_backward(dz, a_prev, W):
    """Gradients of z = a_prev @ W + b: dW (d_in, d_out), db (d_out,), da_prev (n, d_in);
    W None: da_prev None (the input layer's, which no one needs: a third of the products)."""
    return a_prev.T @ dz, dz.sum(axis=0), None if W is None else dz @ W.T


# ---- whole network --------------------------------------------------------------------------

def _forward_all(params, x, act=0, masks=None):
    """Activations of every layer: [a0 = x, a1, ..., logits]; hidden activation code act.
    masks: inverted dropout, a list of (keep (n, d) bool or None, scale) for the input and
    each hidden layer's output (``_dropout_masks``)."""
    acts = [as_float(x, params[0][0].dtype)]
    if masks is not None and masks[0][0] is not None:
        acts[0] = np.where(masks[0][0], acts[0] * acts[0].dtype.type(masks[0][1]), 0)
    for i, (W, b) in enumerate(params):
        z = acts[-1] @ W + b
        if i < len(params) - 1:
            z = activate(z, act)
            if masks is not None and masks[i + 1][0] is not None:
                z = np.where(masks[i + 1][0], z * z.dtype.type(masks[i + 1][1]), 0)
        acts.append(z)
    return acts


def _dropout_masks(params, rows, key, dropout):
    """The masks of ``_forward_all`` for the batch rows `rows` (dataset indices) in the step
    of `key`: the same draws as the Numba kernels' (``fastmnist.augment.keeps``)."""
    thr_in, thr_hid = dropout.thresholds()
    masks = []
    widths = [params[0][0].shape[0]] + [W.shape[1] for W, _ in params[:-1]]
    for layer, (width, thr, p) in enumerate(zip(
            widths, [thr_in] + [thr_hid] * (len(widths) - 1),
            [dropout.p_in] + [dropout.p_hidden] * (len(widths) - 1))):
        if thr == 0:
            masks.append((None, 1.0))
            continue
        keep = augment.keeps(augment.layer_key(key, rows, layer), np.arange(width), thr)
        masks.append((keep, 1.0 / (1.0 - p)))
    return masks


def forward(params, x, activation="relu", output="softmax"):
    """Outputs (n, C) of the network `params` on x (n, d_in): class probabilities for the
    softmax `output`, per-output probabilities for logistic, the last layer for identity."""
    z = _forward_all(params, x, activation_code(activation))[-1]
    head = output_code(output)
    return softmax(z) if head == 0 else logistic(z) if head == 1 else z


def _head_rows(z, y, head):
    """Per-row losses (n,), dz (n, C) = f(z) - target (unscaled) and the rows right, for
    output code `head` (0 softmax and labels y (n,); 1 logistic, 2 identity and targets
    y (n, C))."""
    if head == 0:
        m = z.max(axis=1)
        rows = m + np.log(np.exp(z - m[:, None]).sum(axis=1)) - z[np.arange(len(y)), y]
        dz = softmax(z)
        dz[np.arange(len(y)), y] -= 1
        return rows, dz, int(np.sum(np.argmax(z, axis=1) == y))
    t = np.asarray(y, dtype=z.dtype)
    if head == 1:  # -log p = softplus(-z), -log(1 - p) = softplus(z)
        rows = (t * np.logaddexp(0, -z) + (1 - t) * np.logaddexp(0, z)).sum(axis=1)
        right = int(np.sum(np.all((z > 0) == (t > 0.5), axis=1)))
        return rows, logistic(z) - t, right
    d = z - t
    return 0.5 * (d * d).mean(axis=1), d, 0


def _forward_backward(params, x, y, act=0, head=0, sw=None, eps=0.0, masks=None):
    """(loss, grads, n_correct) for one batch; sw (n,) optional row weights; eps the label
    smoothing of the softmax output; masks the dropout masks (``_forward_all``)."""
    acts = _forward_all(params, x, act, masks)
    logits = acts[-1]
    if eps > 0:  # softmax against (1 - eps) onehot + eps / C: rows' losses and dz
        rows, dz, n_correct = _head_rows(logits, y, head)
        C = logits.shape[1]
        rows = rows + eps * (logits[np.arange(len(y)), y] - logits.mean(axis=1))
        dz = dz - eps / C  # softmax - q = (softmax - onehot) + eps onehot - eps / C
        dz[np.arange(len(y)), y] += eps
        w = np.ones(len(rows)) if sw is None else np.asarray(sw, dtype=np.float64)
        loss = float(np.dot(w, rows) / w.sum())
        dz = dz * (w / w.sum()).astype(dz.dtype)[:, None]
    elif head == 0 and sw is None:
        loss = crossentropy(logits, y)
        n_correct = int(np.sum(np.argmax(logits, axis=1) == y))
        dz = crossentropy_softmax_backward(softmax(logits), y)
    else:  # a weighted mean over the rows: sum of w * row loss / sum of w
        rows, dz, n_correct = _head_rows(logits, y, head)
        w = np.ones(len(rows)) if sw is None else np.asarray(sw, dtype=np.float64)
        loss = float(np.dot(w, rows) / w.sum())
        dz = dz * (w / w.sum()).astype(dz.dtype)[:, None]
    grads = [None] * len(params)
    for i in range(len(params) - 1, -1, -1):
        dW, db, da = linear_backward(dz, acts[i], params[i][0] if i > 0 else None)
        grads[i] = (dW, db)
        if i > 0:
            dz = activate_backward(da, acts[i], act)
            if masks is not None and masks[i][0] is not None:  # dropped units: a = 0, dz = 0
                dz = dz * dz.dtype.type(masks[i][1])
    return loss, grads, n_correct


def loss_and_grads(params, x, y, activation="relu", output="softmax", sample_weight=None,
                   label_smoothing=0.0):
    """Mean loss of the network on (x, y) and its gradients.

    Parameters
    ----------
    params : list of (W (d_in, d_out), b (d_out,))
    x : ndarray (n, d_in), uint8 or the parameters' float dtype
    y : ndarray (n,) of integer labels in [0, C) (softmax), or (n, C) targets
    activation : {"relu", "tanh", "logistic", "identity"} or its code
        Activation of the hidden layers.
    output : {"softmax", "logistic", "identity"}
        The last layer and its loss: cross-entropy, binary cross-entropy summed over the
        outputs, or half the squared error averaged over the outputs (scikit-learn's; as
        there, its gradient is that of the sum over the outputs, dz = prediction - target).
    sample_weight : ndarray (n,) or None
        Row weights; the loss and gradients are then weighted means.
    label_smoothing : float in [0, 1)
        Softmax only: the cross-entropy against (1 - label_smoothing) onehot(y) +
        label_smoothing / C.

    Returns
    -------
    loss : float
    grads : list of (dW (d_in, d_out), db (d_out,)), same dtype as the parameters
    """
    head = output_code(output)
    loss, grads, _ = _forward_backward(params, x, y, activation_code(activation), head,
                                       sample_weight, check_smoothing(label_smoothing, head))
    return loss, grads


def train_step(params, x, y, lr):
    """One SGD step in place: W -= lr * dW, b -= lr * db. Returns the loss before the step."""
    loss, grads = loss_and_grads(params, x, y)
    for (W, b), (dW, db) in zip(params, grads):
        W -= W.dtype.type(lr) * dW
        b -= b.dtype.type(lr) * db
    flush_small(params, [], Optimizer("sgd"))
    return loss


# ---- optimizers and the epoch loop ----------------------------------------------------------

def _some_tiny(g, thr, a):
    """Whether some entry of g is nonzero and below thr in magnitude; a: scratch of g's shape
    (C order), overwritten.

    Zeros need no flush (they add nothing to Adam's moments, which start at +0), and every
    batch leaves some: the rows of the pixels it never lights. Taken as small, they made
    ``_adam`` copy its gradient every step (0.09-0.14 of its 0.39 ms for 784-128-10's W1).
    The magnitudes' bits less 1, unsigned, put the zeros above every float and keep the order
    of the rest (NaN above thr), so their least is below thr's bits less 1 exactly when some
    0 < |g| < thr.
    """
    np.abs(g, out=a)
    bits = a.reshape(-1).view(f"u{a.itemsize}")
    np.subtract(bits, 1, out=bits)
    return bits.size > 0 and bits.min() < np.asarray(thr, a.dtype).view(bits.dtype) - 1


def _adam(p, g, m, v, opt, lr, t):
    """One Adam step of p in place, its moments m and v too; g its gradient (unchanged).

    m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g g;  p -= lr (m / c1) / (sqrt(v / c2) + eps)
    with c1, c2 = 1 - b1^t, 1 - b2^t; gradient entries below the threshold are taken as 0
    (no subnormal g * g: :func:`fastmnist.optim.grad_flush_threshold`). Computed in place
    through two scratch arrays, each operation as the formulas above write it (the same
    results, bit for bit, as the expressions): the temporaries of the expressions made this
    the slowest part of a NumPy step (0.74 of 1.5 ms for 784-128-10, batch 64, on the cold
    start's path).
    """
    dt = p.dtype.type
    a, b = np.empty_like(p), np.empty_like(p)  # scratch (shape of p)
    g_thr = dt(grad_flush_threshold(opt, p.dtype))
    if _some_tiny(g, g_thr, a):  # the copy only where one is small
        g = np.where(np.abs(g) < g_thr, dt(0), g)
    m *= dt(opt.beta1)
    m += np.multiply(dt(1 - opt.beta1), g, out=a)
    v *= dt(opt.beta2)
    np.multiply(dt(1 - opt.beta2), g, out=a)
    v += np.multiply(a, g, out=a)
    np.divide(v, dt(1 - opt.beta2 ** t), out=b)
    np.sqrt(b, out=b)
    b += dt(opt.eps_at(t))
    np.divide(m, dt(1 - opt.beta1 ** t), out=a)
    np.multiply(dt(lr), a, out=a)
    p -= np.divide(a, b, out=a)


def apply_update(params, grads, state, opt, lr, t, weight_decay=None):
    """Apply one step of optimizer `opt` in place; `t` is the 1-based step number (Adam);
    `weight_decay`, when given, replaces ``opt.weight_decay`` for this step.

    After every FLUSH_EVERY-th step of the run, weights and state below the flush threshold
    are set to 0 (:func:`fastmnist.optim.flush_small`; the Numba backend does the same in its
    update sweep), so that they never hold a subnormal float.
    """
    wd = opt.weight_decay if weight_decay is None else weight_decay
    for i, ((W, b), (dW, db)) in enumerate(zip(params, grads)):
        for j, (p, g) in enumerate(((W, dW), (b, db))):
            dt = p.dtype.type
            if wd and j == 0:
                g = g + dt(wd) * p
            if opt.name == "sgd":
                p -= dt(lr) * g
            elif opt.name == "momentum":
                v = state[0][i][j]
                v *= dt(opt.momentum)
                v += g
                p -= dt(lr) * v
            elif opt.name == "nesterov":  # v = mu v + g; p -= lr (g + mu v)
                v = state[0][i][j]
                v *= dt(opt.momentum)
                v += g
                p -= dt(lr) * (g + dt(opt.momentum) * v)
            else:
                _adam(p, g, state[0][i][j], state[1][i][j], opt, lr, t)
    if flush_steps(t - 1, 1)[0]:
        flush_small(params, state, opt)


def prepare(x, scale=None):
    """The reference needs no preprocessing: returns x, or for uint8 x and a `scale` other
    than None a :class:`Scaled` that multiplies x by `scale` instead of 1/255."""
    if scale is not None and x.dtype == np.uint8:
        return Scaled(x, scale)
    return x


def train_epoch(params, state, opt, data, y, order, batch_size, lrs, t0, activation="relu",
                output="softmax", sample_weight=None, l2=None, shift=None, label_smoothing=0.0,
                max_norm=0.0, dropout=None, ema=None, ema_decay=0.0):
    """Run ``len(lrs)`` optimizer steps over the rows ``order`` in batches, in place.

    Parameters
    ----------
    params : list of (W, b)
    state : optimizer state from :func:`fastmnist.optim.init_state`
    opt : fastmnist.optim.Optimizer
    data : the result of :func:`prepare` on x (n_rows, d_in)
    y : ndarray (n_rows,) of labels
    order : ndarray of int64 (m,): the rows to visit, batch after batch
    batch_size : int
    lrs : ndarray of float64 (n_steps,): learning rate of each step, n_steps = ceil(m / batch_size)
    t0 : int, optimizer steps already taken (Adam's bias correction uses t0 + 1, ...)
    activation : {"relu", "tanh", "logistic", "identity"} or its code, of the hidden layers
    output : {"softmax", "logistic", "identity"}
        The last layer and its loss (see :func:`loss_and_grads`); y is then (n_rows, C)
        targets for logistic and identity.
    sample_weight : ndarray (n_rows,) or None
        Row weights: each step's loss and gradient are weighted means over its rows.
    l2 : float or None
        scikit-learn's ``alpha``: each step's weight decay is ``l2 / n`` (n the step's rows,
        or the sum of their weights) instead of ``opt.weight_decay``.
    shift : fastmnist.augment.Shift or None
        Move each batch row by its random shift (:mod:`fastmnist.augment`, drawn from the
        step's key and the row's index) before it goes in.
    label_smoothing : float in [0, 1)
        Softmax only: train against (1 - label_smoothing) onehot(y) + label_smoothing / C.
    max_norm : float >= 0
        After each update, :func:`max_norm` with this c (0: none).
    dropout : fastmnist.augment.Dropout or None
        Inverted dropout of the input pixels and the hidden outputs (ReLU), masks drawn from
        the step's key, the row and the unit (:mod:`fastmnist.augment`).
    ema : list of (W, b) or None, and ema_decay : float in [0, 1)
        The weights' exponential moving average, updated in place after every step:
        ema += (1 - ema_decay) * (weights - ema).

    Returns
    -------
    losses : ndarray of float64 (steps run,): the loss of each batch before its update;
        stops after the first non-finite loss, without applying that update.
    n_correct : int, rows classified correctly (before each update) in the steps run
    """
    head = output_code(output)
    eps = check_smoothing(label_smoothing, head)
    with np.errstate(over="ignore", invalid="ignore"):  # divergence is reported by the caller
        return _train_epoch(params, state, opt, data, y, order, batch_size, lrs, t0,
                            activation_code(activation), head, sample_weight, l2, shift, eps,
                            check_max_norm(max_norm), dropout,
                            None if ema is None else (ema, 1 - check_ema(ema_decay)))


def max_norm(params, c):
    """Scale, in place, every unit's incoming weights (each column of every W) down to
    Euclidean norm c where they are longer (the max-norm constraint of ``fit``)."""
    for W, _ in params:
        norms = np.sqrt(np.einsum("kj,kj->j", W, W))
        W *= np.where(norms > c, c / np.maximum(norms, np.finfo(W.dtype).tiny), 1).astype(
            W.dtype)


def _shifted(xb, rows, shift, key):
    """The batch xb (m, side * side) (or its :class:`Scaled`) with each row moved by its
    random shift in the step of `key`, warped first by its random affine map if any."""
    values = xb.values if isinstance(xb, Scaled) else xb
    dy, dx = augment.row_shifts(key, rows, shift.k)  # zeros for k 0
    if shift.warp:
        a = augment.row_warps(key, rows, shift.warp)
        out = augment.warp_rows(values, dy, dx, a, shift.side)
    else:
        out = augment.shift_rows(values, dy, dx, shift.side)
    return Scaled(out, xb.scale) if isinstance(xb, Scaled) else out


def _train_epoch(params, state, opt, data, y, order, batch_size, lrs, t0, act, head=0,
                 sample_weight=None, l2=None, shift=None, eps=0.0, c=0.0, dropout=None,
                 average=None):
    losses = np.empty(len(lrs))
    n_correct = 0
    full = len(order) == len(data) and batch_size >= len(data)
    if full and len(lrs) > 1 and data.dtype == np.uint8:
        # full batch: scale the images once per call, as the notebook does, not once per step
        data = as_float(data, params[0][0].dtype)  # (n, d_in) float, the same values
    for s in range(len(lrs)):
        rows = order[s * batch_size:(s + 1) * batch_size]
        if len(rows) == len(data) and np.array_equal(rows, np.arange(len(data))):
            xb, yb = data, y  # full batch in order: no copy of the dataset
        else:
            xb, yb = data[rows], y[rows]
        key = (shift if shift is not None else dropout).keys(t0 + s + 1) if (
            shift is not None or dropout is not None) else None
        if shift is not None:
            xb = _shifted(xb, rows, shift, key)
        masks = None if dropout is None else _dropout_masks(params, rows, key, dropout)
        sw = None if sample_weight is None else np.asarray(sample_weight)[rows]
        loss, grads, correct = _forward_backward(params, xb, yb, act, head, sw, eps, masks)
        losses[s] = loss
        if not np.isfinite(loss):
            return losses[:s + 1], n_correct
        n_correct += correct
        wd = None if l2 is None else l2 / (len(rows) if sw is None else float(np.sum(sw)))
        apply_update(params, grads, state, opt, lrs[s], t0 + s + 1, wd)
        if c > 0:
            max_norm(params, c)
        if average is not None:  # (ema, 1 - decay)
            for pair, ema_pair in zip(params, average[0]):
                for p, e in zip(pair, ema_pair):
                    e += e.dtype.type(average[1]) * (p - e)
    return losses, n_correct
