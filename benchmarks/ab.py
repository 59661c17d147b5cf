"""A/B: the working tree's fastmnist against a git revision's, interleaved in one process.

    python benchmarks/ab.py REV [--repeats 7] [--threads N] [--cpu NAME] [--workloads W,...]

The revision's package is exported (``git archive``) into a temporary folder under another name
(``fm_a``; ``fm_b`` for the working tree), so that both import side by side; each keeps its own
Numba cache there (the first run compiles both, once). Workloads: one SGD epoch of a network
through the Numba backend's ``train_epoch`` on data prepared once (``epoch-784-10-10``,
``epoch-784-128-10``, ``epoch-784-256-128-10``), and a recipe's whole ``fit`` as users call it
(``fit-default``, ``fit-fast98``, any recipe; ``fit-best+affine``: with ``affine=(10, 0.1, 10)``
added; ``fit-default+numpy``: one epoch on the NumPy reference, as a cold start trains while the
kernels compile; ``fit-784-128-10``, any sizes: a new model's 3-epoch SGD fit, lr 0.05, batch
128, as ``fastmnist bench`` times its ``fit`` contender; ``fit-784-256-128-10+adam``: the same
with Adam, lr 0.001; ``fit-784-128-10+dense``: that on standardized features, the bench's dense
case), and the kernels users call directly on
uint8 rows of 784-128-10: ``forward-10000`` (the first 10,000 images) and ``loss_and_grads-128``
(one batch, repeated 20 times a run). The two sides start from the same weights and must end
bit-identical unless ``--allow-different`` (a change meant to move the rounding). Runs go A, B,
B, A, A, B, ... with a pause before each (:func:`fastmnist.tools.harness.timing.interleaved`),
and the report gives each side's median and B / A, the ratio of the fastest runs, and the median
of each round's B / A (paired: a slow drift of the machine's speed cancels within a round): a
refactor is done when no B / A is above 1.03. ``--cpu haswell`` (or ``x86-64``, ...) compiles
both for that CPU: ``NUMBA_CPU_NAME`` with ``NUMBA_CPU_FEATURES=""``, since the name alone
keeps the host's instruction set. On a noisy machine, run enough rounds that two
copies of the same code (``ab.py HEAD`` on a clean tree) come out within that. Needs MNIST in
$FASTMNIST_DATA or the cache.
"""

import argparse
import importlib
import os
import statistics
import subprocess
import sys
import tempfile

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORKLOADS = ("epoch-784-10-10", "epoch-784-128-10", "epoch-784-256-128-10", "fit-default",
             "fit-fast98", "forward-10000", "loss_and_grads-128")


def _renamed_copy(files, dest, name):
    """Write {relative path: bytes} under dest/name, with 'fastmnist.' module paths renamed."""
    for rel, data in files.items():
        if not rel.startswith("fastmnist/") or "__pycache__" in rel:
            continue
        path = os.path.join(dest, name, rel[len("fastmnist/"):])
        os.makedirs(os.path.dirname(path), exist_ok=True)
        if rel.endswith(".py"):
            data = data.replace(b'"fastmnist.', f'"{name}.'.encode())
        with open(path, "wb") as f:
            f.write(data)


def _files_at(rev):
    out = subprocess.run(["git", "-C", ROOT, "ls-tree", "-r", "--name-only", rev, "fastmnist"],
                         capture_output=True, text=True, check=True).stdout.split()
    return {p: subprocess.run(["git", "-C", ROOT, "show", f"{rev}:{p}"], capture_output=True,
                              check=True).stdout for p in out}


def _files_here():
    files = {}
    for folder, _, names in os.walk(os.path.join(ROOT, "fastmnist")):
        for n in names:
            if n.endswith((".py", ".json")):
                full = os.path.join(folder, n)
                with open(full, "rb") as f:
                    files[os.path.relpath(full, ROOT)] = f.read()
    return files


def _epoch(pkg, sizes, X, y, threads):
    be = importlib.import_module(f"{pkg.__name__}.backends.numba_cpu")
    init_params = importlib.import_module(f"{pkg.__name__}.model").init_params
    Optimizer = importlib.import_module(f"{pkg.__name__}.optim").Optimizer
    init_state = importlib.import_module(f"{pkg.__name__}.optim").init_state
    data = be.prepare(X)
    order = np.random.default_rng(0).permutation(len(X)).astype(np.int64)
    lrs = np.full(-(-len(X) // 128), 0.05)
    params = init_params(list(sizes), np.dtype("float32"), "he", np.random.default_rng(0))
    opt = Optimizer("sgd")
    state = init_state(params, opt)

    def run():
        with be.threads(threads):
            be.train_epoch(params, state, opt, data, y, order, 128, lrs, 0)
        return params
    return run


def _kernel(pkg, name, X, y, threads):
    be = importlib.import_module(f"{pkg.__name__}.backends.numba_cpu")
    init_params = importlib.import_module(f"{pkg.__name__}.model").init_params
    params = init_params([784, 128, 10], np.dtype("float32"), "he", np.random.default_rng(0))

    def run():
        with be.threads(threads):
            if name == "forward-10000":
                return [(be.forward(params, X[:10000]),)]
            for _ in range(20):
                loss, grads = be.loss_and_grads(params, X[:128], y[:128])
            return grads
    return run


def _fit(pkg, recipe, X, y, threads):
    recipes = importlib.import_module(f"{pkg.__name__}.recipes")
    MLP = importlib.import_module(f"{pkg.__name__}.model").MLP
    recipe, _, extra = recipe.partition("+")
    if extra == "dense":  # standardized features, as the bench's dense case
        from fastmnist.tools.head_to_head import standardized
        X = standardized(X)

    def run():
        if recipe[:1].isdigit():  # sizes: the bench's fit contender
            sizes = [int(s) for s in recipe.split("-")]
            model = MLP(hidden=sizes[1:-1], n_features=sizes[0], n_classes=sizes[-1], seed=0,
                        pixels=extra != "dense")
            kw = dict(epochs=3, batch_size=128, lr=0.05, optimizer="sgd", schedule=None)
        else:
            model, kw = recipes.get(recipe)
        if extra == "affine":
            kw["affine"] = (10.0, 0.1, 10.0)
        if extra in ("adam", "dense"):  # the sizes' fit with Adam (lr 0.001) instead of SGD
            kw.update(optimizer="adam", lr=0.001)
        if extra == "numpy":  # the reference backend, one epoch: a cold start's path
            kw.update(backend="numpy", epochs=1)
        if threads:
            kw["threads"] = threads
        model.fit(X, y, progress=False, **kw)
        return model.params
    return run


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("rev", help="the git revision to compare the working tree with (A)")
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--threads", type=int, help="threads for both (default: fit's choice)")
    ap.add_argument("--workloads", default=",".join(WORKLOADS))
    ap.add_argument("--allow-different", action="store_true",
                    help="do not require bit-identical results")
    ap.add_argument("--cpu", help="compile both for this LLVM CPU (haswell, x86-64, ...) and "
                    "its own features: NUMBA_CPU_NAME, with NUMBA_CPU_FEATURES empty")
    args = ap.parse_args(argv)
    if args.cpu:  # before Numba reads its configuration
        os.environ["NUMBA_CPU_NAME"] = args.cpu
        os.environ.setdefault("NUMBA_CPU_FEATURES", "")
    elif "NUMBA_CPU_NAME" in os.environ and "NUMBA_CPU_FEATURES" not in os.environ:
        print("note: NUMBA_CPU_NAME without NUMBA_CPU_FEATURES keeps the host's features "
              "(use --cpu to emulate that CPU)", file=sys.stderr)
    tmp = tempfile.mkdtemp(prefix="fastmnist-ab-")
    _renamed_copy(_files_at(args.rev), tmp, "fm_a")
    _renamed_copy(_files_here(), tmp, "fm_b")
    sys.path.insert(0, tmp)
    os.environ.setdefault("NUMBA_CACHE_DIR", os.path.join(tmp, "numba"))
    import fastmnist
    from fastmnist.tools.harness.timing import interleaved
    X, y, _, _ = fastmnist.load_mnist(download=False)
    y = y.astype(np.int64)
    sides = {"A": importlib.import_module("fm_a"), "B": importlib.import_module("fm_b")}
    print(f"A = {args.rev}, B = the working tree; {args.repeats} interleaved runs each")
    for w in [w.strip() for w in args.workloads.split(",") if w.strip()]:
        if w.startswith("epoch-"):
            sizes = [int(s) for s in w[len("epoch-"):].split("-")]
            fns = {k: _epoch(p, sizes, X, y, args.threads or None) for k, p in sides.items()}
        elif w in ("forward-10000", "loss_and_grads-128"):
            fns = {k: _kernel(p, w, X, y, args.threads or None) for k, p in sides.items()}
        else:
            fns = {k: _fit(p, w[len("fit-"):], X, y, args.threads) for k, p in sides.items()}
        outs = {k: fn() for k, fn in fns.items()}  # compile, warm up, compare
        same = all(np.array_equal(a, b) for pa, pb in zip(outs["A"], outs["B"])
                   for a, b in zip(pa, pb))
        if not same and not args.allow_different:
            raise SystemExit(f"{w}: A and B end with different weights (--allow-different)")
        times = interleaved(fns, repeats=args.repeats, warmup=0)
        a, b = statistics.median(times["A"]), statistics.median(times["B"])
        lo_a, lo_b = min(times["A"]), min(times["B"])
        # each round's B over its A, run next to each other: a drift of the machine's speed
        # over minutes cancels in the pair
        paired = statistics.median(tb / ta for ta, tb in zip(times["A"], times["B"]))
        print(f"{w:22s} A {a:8.4f} s  B {b:8.4f} s  B/A {b / a:5.3f}  (fastest runs: "
              f"{lo_b / lo_a:5.3f}; paired: {paired:5.3f})"
              f"{'' if same else '  (results differ)'}", flush=True)


if __name__ == "__main__":
    main()
