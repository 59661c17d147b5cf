"""Inference against the inference engines, interleaved in one process (issue: inference as
fast as the inference engines).

    python benchmarks/inference.py [--repeats 15] [--recipe default]

``predict_proba`` of the recipe's network (fresh weights; the work does not depend on their
values) on MNIST's 10,000 test images at once (timed as 20 calls in a row) and on one image (1,000
calls), for
fastmnist's Numba and NumPy backends, onnxruntime and PyTorch when installed
(:mod:`fastmnist.tools.harness.inference`: every contender's probabilities are checked against
the NumPy reference first). All contenders of a case run round-robin with a pause before each
run (:func:`fastmnist.tools.harness.timing.interleaved`); prints the CPU, each one's median
and how many times faster fastmnist's Numba backend is. Needs MNIST in $FASTMNIST_DATA or the
cache.
"""

import argparse
import statistics


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--recipe", default="default")
    args = ap.parse_args(argv)

    import numpy as np

    import fastmnist as fm
    from fastmnist.tools.harness import inference
    from fastmnist.tools.harness.timing import cpu_model, interleaved

    _, _, X_test, _ = fm.load_mnist(download=False)
    model, _ = fm.recipes.get(args.recipe)
    print(f"CPU: {cpu_model()}; recipe {args.recipe!r}: {model.sizes}, {np.dtype(model.dtype)}")
    for case, rows, calls in (("batch of 10,000", len(X_test), 20), ("one image", 1, 1000)):
        x = np.ascontiguousarray(X_test[:rows])
        runs = {name: inference.repeated(fn, calls)
                for name, fn in inference.contenders(model, x).items()}
        times = interleaved(runs, repeats=args.repeats, warmup=2)
        med = {k: statistics.median(v) / calls for k, v in times.items()}
        fast = med["fastmnist-numba"]
        print(f"{case}:")
        for name, t in med.items():
            shown = f"{t * 1e3:8.3f} ms" if rows > 1 else f"{t * 1e6:8.2f} us"
            print(f"  {name:16s} {shown}  fastmnist-numba is {t / fast:5.2f}x faster")


if __name__ == "__main__":
    main()
