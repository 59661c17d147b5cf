"""fastmnist.sklearn.MLPClassifier against scikit-learn's own, each fit in its own process.

    python benchmarks/sklearn_vs.py [--rounds 3] [--data uint8,standardized] [--max-iter 10]

The same arguments for both (``hidden_layer_sizes=(100,)``, ``max_iter``, ``random_state=0``,
everything else scikit-learn's defaults) on MNIST as a user holds it: the uint8 images as
they come, or StandardScaler's float64 output. Processes alternate, fastmnist then
scikit-learn, `rounds` times, so that a noisy neighbour slows both, and neither's spinning
threads (Numba's OpenMP, OpenBLAS) tax the other; medians are reported
(``fastmnist.tools.harness.timing.interleaved``). Timed: ``fit``, as a
user's script calls it (validation and preparation included), after a warm-up fit on 2,000
rows that loads fastmnist's compiled kernels from the cache (the first run of all compiles
them). The test accuracy of each fit is printed beside its time.

This is the interleaved counterpart of ``pytest benchmarks/test_sklearn.py --benchmark-only``,
whose groups time each contender's rounds one after the other. Needs scikit-learn; MNIST via
$FASTMNIST_DATA or the cache.
"""

import argparse
import json
import statistics
import time
import warnings

CONTENDERS = ("fastmnist", "scikit-learn")


def _data(kind):
    import numpy as np

    import fastmnist as fm
    X, y, X_test, y_test = fm.load_mnist(download=False)
    if kind == "standardized":
        from sklearn.preprocessing import StandardScaler
        scaler = StandardScaler().fit(X)
        X, X_test = scaler.transform(X), scaler.transform(X_test)
    return X, np.asarray(y), X_test, np.asarray(y_test)


def _worker(who, kind, max_iter):
    from sklearn.exceptions import ConvergenceWarning
    if who == "fastmnist":
        from fastmnist.sklearn import MLPClassifier
    else:
        from sklearn.neural_network import MLPClassifier
    X, y, X_test, y_test = _data(kind)
    args = dict(hidden_layer_sizes=(100,), max_iter=max_iter, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        MLPClassifier(**{**args, "max_iter": 2}).fit(X[:2000], y[:2000])
        est = MLPClassifier(**args)
        t0 = time.perf_counter()
        est.fit(X, y)
        seconds = time.perf_counter() - t0
    return seconds, float(est.score(X_test, y_test))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--data", default="uint8,standardized",
                    help="comma-separated: uint8, standardized")
    ap.add_argument("--max-iter", type=int, default=10)
    ap.add_argument("--worker", choices=CONTENDERS, help=argparse.SUPPRESS)
    args = ap.parse_args()
    kinds = args.data.split(",")
    if args.worker:
        seconds, acc = _worker(args.worker, kinds[0], args.max_iter)
        print(json.dumps({"seconds": seconds, "accuracy": acc}))
        return
    from fastmnist.tools.harness.timing import in_own_process, interleaved
    for kind in kinds:
        times = interleaved({who: in_own_process([__file__, "--worker", who, "--data", kind,
                                                  "--max-iter", str(args.max_iter)],
                                                 f"{kind}: {who:12s}")
                             for who in CONTENDERS}, repeats=args.rounds, warmup=0)
        med = {who: statistics.median(t) for who, t in times.items()}
        print(f"{kind}: median fit seconds: fastmnist {med['fastmnist']:.2f}, scikit-learn "
              f"{med['scikit-learn']:.2f}; scikit-learn / fastmnist = "
              f"{med['scikit-learn'] / med['fastmnist']:.2f}x", flush=True)

if __name__ == "__main__":
    main()
