"""fastmnist bench: fastmnist through fit against its contenders, ratios measured in one run."""


def add_parser(sub):
    from ..head_to_head import CASES
    p = sub.add_parser("bench", help="time fastmnist's fit against plain NumPy, the reference, "
                                     "the notebook's code, PyTorch and JAX on the same work",
                       description="Every contender of fastmnist.tools.harness on each case, "
                                   "checked against the NumPy reference, then timed "
                                   "interleaved (medians). Cases: " + ", ".join(CASES))
    p.add_argument("--cases", default=",".join(CASES), help="comma-separated case names")
    p.add_argument("--repeats", type=int, default=5, help="timed runs per contender")
    p.add_argument("--threads", type=int, help="threads for numba and torch (default: all)")
    p.add_argument("--data-dir", help="folder with the IDX files or mnist.npz")
    p.add_argument("--busy", action="store_true",
                   help="instead: fit the default and fast98 recipes quiet and with a "
                        "busy-looping neighbour process (started here), default threads and 1")
    p.add_argument("--rounds", type=int, default=3, help="quiet/busy rounds with --busy")
    p.add_argument("--own-session", action="store_true",
                   help="with --busy: start the neighbour in a session of its own, as a "
                        "browser or another terminal's job runs (Linux then shares the cores "
                        "between the sessions first)")
    p.set_defaults(run=run)
    return p


def run(args):
    import numpy as np

    from ...data import load_mnist
    from ...errors import InputError
    from .. import head_to_head

    names = [c.strip() for c in args.cases.split(",") if c.strip()]
    unknown = [c for c in names if c not in head_to_head.CASES]
    if unknown:
        raise InputError(f"unknown case(s) {unknown}; choose from {', '.join(head_to_head.CASES)}")
    if args.repeats < 1:
        raise InputError("--repeats must be >= 1")
    X, y, _, _ = load_mnist(args.data_dir, verbose=True)
    print(head_to_head.machine())
    if args.busy:
        from ...busy import busy_report
        if args.rounds < 1:
            raise InputError("--rounds must be >= 1")
        _, lines = busy_report(X, y, rounds=args.rounds, own_session=args.own_session)
        print("\n".join(lines))
        return 0
    peers = head_to_head.available_peers()
    print("peers: " + (", ".join(peers) if peers
                       else "none installed (the `peers` extra: pip install -e '.[peers]')"))
    roof = head_to_head.gemm_roof()
    print(f"GEMM roof (NumPy float32 1024^3 matmul, best of 7): {roof:.1f} GFLOP/s")
    nnz = int(np.count_nonzero(X))
    results = {}
    for name in names:
        case = head_to_head.CASES[name]
        print(f"timing {name} ({args.repeats} interleaved runs each)...", flush=True)
        results[name] = (case, len(X), nnz,
                         head_to_head.run_case(case, X, y, args.repeats, args.threads))
    print(head_to_head.report(results, roof))
    return 0
