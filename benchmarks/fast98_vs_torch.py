"""A recipe (fast98 unless told) in fastmnist against the same recipe in PyTorch, each in its
own process.

    python benchmarks/fast98_vs_torch.py [--rounds 3] [--seed 0] [--recipe fast98]
                                         [--affine DEGREES,SCALE,SHEAR]

``--affine`` adds random affine warps to the recipe, in both contenders.

Same network (He-initialized by each library), Adam with a OneCycle schedule (PyTorch's
OneCycleLR, ``cycle_momentum=False``), the recipe's peak lr, batch size and epochs, float32, 2
threads (or all cores). A recipe with random shifts (``fast985``, ``best``) gets them in
PyTorch as its users write them: torchvision's ``RandomCrop(28, padding=k)`` (zero padding,
then a crop at a random offset per image), done on the whole batch at once with one gather.
A recipe with affine warps gets them as a PyTorch user warps a batch (kornia's
``RandomAffine`` does the same): one random rotation, scale and shear per image, drawn from
fastmnist's distributions, applied by ``affine_grid`` and ``grid_sample`` with
nearest-neighbour sampling and zero padding, before the crop. Label smoothing goes to
``CrossEntropyLoss(label_smoothing=...)``.
Processes alternate, fastmnist then PyTorch, `rounds` times, so that a noisy neighbour slows
both; medians are reported. Timed: the training loop only (data loaded, fastmnist's kernels
loaded from the cache by a warm-up fit on a slice first; PyTorch warmed up by its first steps
being inside the timing, as a user would see). Separate processes because Numba's and
PyTorch's OpenMP runtimes in one process slow PyTorch's Adam (see README).
Needs torch; MNIST via $FASTMNIST_DATA or the cache.
"""

import argparse
import json
import os
import statistics
import time


def _recipe(name, seed, affine):
    """(model, fit keywords) of the recipe `name`, with the affine warps `affine` if given."""
    import fastmnist as fm
    model, kw = fm.recipes.get(name, seed=seed)
    if affine:
        kw["affine"] = tuple(float(v) for v in affine.split(","))
    return model, kw


def _fastmnist(seed, recipe, affine):
    import fastmnist as fm
    X, y, X_test, y_test = fm.load_mnist(download=False)
    warm, kw = _recipe(recipe, 0, affine)
    warm.fit(X[:640], y[:640], progress=False, **{**kw, "epochs": 1})
    model, kw = _recipe(recipe, seed, affine)
    t0 = time.perf_counter()
    model.fit(X, y, progress=False, **kw)
    return time.perf_counter() - t0, model.score(X_test, y_test)


def _random_crop(xb, k, gen):
    """torchvision's RandomCrop(28, padding=k) on a batch xb (m, 784) at once: each image
    zero-padded by k and cropped at its own random offset, i.e. shifted by up to k pixels."""
    import torch
    m = xb.shape[0]
    padded = torch.nn.functional.pad(xb.view(m, 28, 28), (k, k, k, k))
    oy = torch.randint(0, 2 * k + 1, (m, 1, 1), generator=gen)
    ox = torch.randint(0, 2 * k + 1, (m, 1, 1), generator=gen)
    r = torch.arange(28).view(1, 28, 1) + oy
    c = torch.arange(28).view(1, 1, 28) + ox
    return padded[torch.arange(m).view(m, 1, 1), r, c].reshape(m, 784)


def _random_affine(xb, limits, gen):
    """Each image of the batch xb (m, 784) rotated, scaled and sheared about its centre at
    random within limits (degrees, scale, shear) as ``fastmnist.augment`` draws them: the
    inverse map built per image, then ``grid_sample`` (nearest, zeros outside)."""
    import math

    import torch
    import torch.nn.functional as F
    degrees, scale, shear = limits
    m = xb.shape[0]

    def uniform(a):
        return (torch.rand(m, generator=gen) * 2 - 1) * a

    t = uniform(math.tan(math.radians(degrees) / 2))  # tan(angle / 2), as fastmnist draws it
    cos, sin = (1 - t * t) / (1 + t * t), 2 * t / (1 + t * t)
    inv_zoom = 1 / (1 + uniform(scale))
    h = uniform(math.tan(math.radians(shear)))
    m00, m01, m10, m11 = cos * inv_zoom, -sin * inv_zoom, sin * inv_zoom, cos * inv_zoom
    # rows of the map on (row, column); affine_grid's theta acts on (x, y) = (column, row)
    a = torch.stack([m00, m01, m10 - h * m00, m11 - h * m01], 1)
    theta = torch.zeros(m, 2, 3)
    theta[:, 0, 0], theta[:, 0, 1] = a[:, 3], a[:, 2]
    theta[:, 1, 0], theta[:, 1, 1] = a[:, 1], a[:, 0]
    grid = F.affine_grid(theta, (m, 1, 28, 28), align_corners=False)
    return F.grid_sample(xb.view(m, 1, 28, 28), grid, mode="nearest", padding_mode="zeros",
                         align_corners=False).view(m, 784)


def _torch(seed, recipe, affine):
    import numpy as np
    import torch

    import fastmnist as fm
    X, y, X_test, y_test = fm.load_mnist(download=False)
    model, kw = _recipe(recipe, seed, affine)
    k = kw.get("shift", 0)
    affine = kw.get("affine")
    torch.manual_seed(seed)
    torch.set_num_threads(len(os.sched_getaffinity(0)))  # all cores, as fastmnist uses
    Xt = torch.from_numpy(X).float().div_(255.0)
    yt = torch.from_numpy(y.astype(np.int64))
    sizes = model.sizes
    layers = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers += [torch.nn.Linear(a, b)] + ([torch.nn.ReLU()] if i < len(sizes) - 2 else [])
    net = torch.nn.Sequential(*layers)
    opt = torch.optim.Adam(net.parameters(), lr=kw["lr"])
    steps = -(-len(X) // kw["batch_size"])
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=kw["lr"],
                                                total_steps=kw["epochs"] * steps,
                                                cycle_momentum=False)
    loss_fn = torch.nn.CrossEntropyLoss(label_smoothing=kw.get("label_smoothing", 0.0))
    gen = torch.Generator().manual_seed(seed)
    t0 = time.perf_counter()
    for _ in range(kw["epochs"]):
        for rows in torch.randperm(len(X), generator=gen).split(kw["batch_size"]):
            opt.zero_grad(set_to_none=True)
            xb = Xt[rows]
            if affine:
                xb = _random_affine(xb, affine, gen)
            if k:
                xb = _random_crop(xb, k, gen)
            loss_fn(net(xb), yt[rows]).backward()
            opt.step()
            sched.step()
    seconds = time.perf_counter() - t0
    with torch.no_grad():
        pred = net(torch.from_numpy(X_test).float() / 255.0).argmax(1).numpy()
    return seconds, float(np.mean(pred == y_test))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--recipe", default="fast98")
    ap.add_argument("--affine", metavar="DEGREES,SCALE,SHEAR",
                    help="add random affine warps to the recipe, in both contenders")
    ap.add_argument("--worker", choices=["fastmnist", "torch"], help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        worker = _fastmnist if args.worker == "fastmnist" else _torch
        seconds, acc = worker(args.seed, args.recipe, args.affine)
        print(json.dumps({"seconds": seconds, "accuracy": acc}))
        return
    from fastmnist.tools.harness.timing import in_own_process, interleaved
    extra = ["--affine", args.affine] if args.affine else []
    times = interleaved({who: in_own_process([__file__, "--worker", who, "--seed",
                                              str(args.seed), "--recipe", args.recipe, *extra],
                                             f"{who:9s}")
                         for who in ("fastmnist", "torch")}, repeats=args.rounds, warmup=0)
    med = {who: statistics.median(t) for who, t in times.items()}
    print(f"median training seconds: fastmnist {med['fastmnist']:.2f}, PyTorch "
          f"{med['torch']:.2f}; PyTorch / fastmnist = {med['torch'] / med['fastmnist']:.2f}x")

if __name__ == "__main__":
    main()
