"""fastmnist study: what each optimization buys, measured here -> report.md + PNG plots."""


def add_parser(sub):
    p = sub.add_parser(
        "study", help="sweep batch size, threads, dtype, Python overhead, sparsity and "
                      "recipes; write report.md and plots (needs matplotlib)")
    p.add_argument("--out", required=True, metavar="DIR",
                   help="folder for report.md, study.json and the PNG plots (created)")
    p.add_argument("--quick", action="store_true",
                   help="a reduced sweep (well under a minute): a smoke test, not a study")
    p.add_argument("--data-dir", help="folder with the IDX files or mnist.npz")
    p.set_defaults(run=run)
    return p


def run(args):
    import sys
    import time

    from ..study import require_matplotlib, run_study

    require_matplotlib()  # fail before minutes of measuring, not after

    def log(msg):
        print(msg, file=sys.stderr, flush=True)

    t0 = time.perf_counter()
    paths = run_study(args.out, quick=args.quick, data_dir=args.data_dir, log=log)
    for path in paths:
        print(f"wrote {path}")
    log(f"study done in {time.perf_counter() - t0:.1f} s")
    return 0
