"""fastmnist compile: compile the Numba kernels into the cache ahead of the first run."""

import time


def add_parser(sub):
    p = sub.add_parser(
        "compile", help="compile the Numba kernels ahead (a first run then starts warm)",
        description="Compile the Numba backend's kernels for this CPU into Numba's cache, for "
                    "the parameter and input types given (default: both dtypes, uint8 pixels "
                    "of 784 features, which covers every recipe on MNIST). 30-50 s per "
                    "type on 2 cores; nothing when they are cached already. After a fresh "
                    "install, in a Dockerfile or a CI setup step, it saves the first run its "
                    "compilation.")
    p.add_argument("--dtype", choices=("float32", "float64"), action="append",
                   help="parameter dtype (repeat for both; default both)")
    p.add_argument("--inputs", choices=("uint8", "float"), action="append",
                   help="input type: uint8 pixels or float features (repeat for both; "
                        "default uint8)")
    p.add_argument("--features", type=int, default=784, help="input width (default 784)")
    p.set_defaults(run=run)
    return p


def run(args):
    from ... import warmup
    from ..._notice import slow_notice
    from ...errors import InputError

    if args.features < 1:
        raise InputError(f"--features must be >= 1, got {args.features}")
    for dtype in args.dtype or ("float32", "float64"):
        for inputs in args.inputs or ("uint8",):
            s = warmup.spec(dtype, "uint8" if inputs == "uint8" else dtype, args.features)
            what = f"kernels for {dtype} parameters, {inputs} inputs"
            t0 = time.perf_counter()
            with slow_notice(f"{what}: compiling (30-50 s)", after=1.5):
                how = warmup.wait(s)
            took = time.perf_counter() - t0
            print({"cached": f"{what}: in the cache already",
                   "waited": f"{what}: compiled by a run in the background; waited {took:.1f} s",
                   "compiled": f"{what}: compiled (or loaded) in {took:.1f} s"}[how])
    return 0
