"""fastmnist data: where MNIST comes from, verified."""


def add_parser(sub):
    p = sub.add_parser("data", help="show where MNIST comes from and verify its checksums")
    p.add_argument("--data-dir", help="folder with the IDX files or mnist.npz")
    p.add_argument("--cache-dir", help="cache folder (default $FASTMNIST_CACHE or ~/.cache)")
    p.set_defaults(run=run)


def run(args):
    from ...data import data_report
    print(data_report(data_dir=args.data_dir, cache_dir=args.cache_dir))
    return 0
