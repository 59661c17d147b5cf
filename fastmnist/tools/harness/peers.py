"""The same epochs in PyTorch and JAX, written as a user of each would write them.

Both start from fastmnist's initial weights, so that their first steps can be checked against
the NumPy reference before they are timed. Both get the images converted once to float32 and
scaled (outside the timing), as their users do; fastmnist keeps uint8.
"""

import functools

import numpy as np

from .epochs import BATCH, Epoch

# ---- PyTorch: the standard loop -------------------------------------------------------------


def torch_data(X, y):
    """(Xt float32 (n, d), yt int64 (n,)) tensors, converted once: uint8 pixels scaled to
    [0, 1], other features as given."""
    import torch
    torch.set_flush_denormal(True)  # before torch's first parallel work: see torch_epoch
    Xt = torch.from_numpy(np.ascontiguousarray(X)).float()
    if X.dtype == np.uint8:
        Xt.div_(255.0)
    return Xt, torch.from_numpy(np.asarray(y, np.int64))


def torch_mlp(params):
    """``nn.Sequential(Linear, ReLU, ..., Linear)`` holding fastmnist's weights [(W (d_in,
    d_out), b (d_out,)), ...] (copies, W transposed as ``nn.Linear`` stores it)."""
    import torch
    layers = []
    for i, (W, b) in enumerate(params):
        linear = torch.nn.Linear(*W.shape)
        with torch.no_grad():
            linear.weight.copy_(torch.from_numpy(np.ascontiguousarray(W.T)))
            linear.bias.copy_(torch.from_numpy(b))
        layers += [linear, torch.nn.ReLU()] if i < len(params) - 1 else [linear]
    return torch.nn.Sequential(*layers)


def torch_epoch(params, data, order, lr, optimizer="sgd", onecycle_steps=None,
                batch_size=BATCH, threads=None):
    """An Epoch of ``nn.Sequential(Linear, ReLU, ..., Linear)`` with CrossEntropyLoss.

    Per batch: forward, loss, backward, ``opt.step()`` (SGD or Adam) and, with
    `onecycle_steps`, ``OneCycleLR(max_lr=lr, total_steps=onecycle_steps).step()`` — the
    scheduler made afresh each epoch, so every round replays the same first epoch of the run.
    ``cycle_momentum=False`` keeps Adam's beta1 fixed, as fastmnist's "onecycle" does.
    """
    import torch
    if threads:
        torch.set_num_threads(threads)
    # Adam's second moments of rarely lit pixels become subnormal and sqrt of a subnormal is
    # slow on x86; a PyTorch user tuning CPU speed flushes them, as fastmnist does its own.
    # Known caveat: with Numba's OpenMP pool started first in the same process (as under
    # pytest), PyTorch's Adam sqrt ran at 1.2 ms a call and the fast98 epoch took 5.9 s
    # instead of 1.0-1.6 s in a process of its own; see the README's benchmark notes.
    torch.set_flush_denormal(True)
    Xt, yt = data
    model = torch_mlp(params)
    if optimizer == "sgd":
        opt = torch.optim.SGD(model.parameters(), lr=lr)
    else:
        opt = torch.optim.Adam(model.parameters(), lr=lr, betas=(0.9, 0.999), eps=1e-8)
    loss_fn = torch.nn.CrossEntropyLoss()
    batches = torch.from_numpy(order).split(batch_size)

    def run():
        sched = None
        if onecycle_steps:
            sched = torch.optim.lr_scheduler.OneCycleLR(
                opt, max_lr=lr, total_steps=onecycle_steps, cycle_momentum=False)
        losses = []
        for rows in batches:
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(model(Xt[rows]), yt[rows])
            loss.backward()
            opt.step()
            if sched is not None:
                sched.step()
            losses.append(loss.detach())
        return torch.stack(losses).numpy()

    def current():
        return [(m.weight.detach().numpy().T.copy(), m.bias.detach().numpy().copy())
                for m in model if isinstance(m, torch.nn.Linear)]
    return Epoch(run, current)


# ---- JAX: jit over a lax.scan across the batches --------------------------------------------

def jax_data(X, y):
    """(X float32 (n, d), y int32 (n,)) device arrays, converted once: uint8 pixels scaled
    to [0, 1], other features as given."""
    import jax.numpy as jnp
    Xj = jnp.asarray(X, dtype=jnp.float32)
    if X.dtype == np.uint8:
        Xj = Xj / 255.0
    return Xj, jnp.asarray(np.asarray(y, np.int32))


@functools.cache
def _jax_sgd_epoch():
    """The jitted epoch: params pytree [(W, b), ...] -> (params, losses (n_steps,))."""
    import jax
    import jax.numpy as jnp

    def loss_fn(params, x, y):
        a = x
        for W, b in params[:-1]:
            a = jax.nn.relu(a @ W + b)
        W, b = params[-1]
        logp = jax.nn.log_softmax(a @ W + b)
        return -jnp.mean(jnp.take_along_axis(logp, y[:, None], axis=1))

    def step(params, x, y, lr):
        loss, grads = jax.value_and_grad(loss_fn)(params, x, y)
        return jax.tree_util.tree_map(lambda p, g: p - lr * g, params, grads), loss

    @jax.jit
    def epoch(params, X, Y, idx, tail, lr):
        """idx (n_full, B): the full batches' rows; tail (r,): the last, short batch."""
        params, losses = jax.lax.scan(lambda p, rows: step(p, X[rows], Y[rows], lr), params,
                                      idx)
        if tail.shape[0]:
            params, last = step(params, X[tail], Y[tail], lr)
            losses = jnp.concatenate([losses, last[None]])
        return params, losses
    return epoch


def jax_epoch(params, data, order, lr, batch_size=BATCH):
    """An Epoch of SGD at a constant `lr`, the whole epoch one jitted call."""
    import jax
    import jax.numpy as jnp
    X, Y = data
    full = len(order) // batch_size * batch_size
    idx = jnp.asarray(order[:full].reshape(-1, batch_size).astype(np.int32))
    tail = jnp.asarray(order[full:].astype(np.int32))
    lr = jnp.float32(lr)
    state = [[(jnp.asarray(W), jnp.asarray(b)) for W, b in params]]
    epoch = _jax_sgd_epoch()

    def run():
        new, losses = jax.block_until_ready(epoch(state[0], X, Y, idx, tail, lr))
        state[0] = new
        return np.asarray(losses)

    def current():
        return [(np.asarray(W), np.asarray(b)) for W, b in state[0]]
    return Epoch(run, current)
