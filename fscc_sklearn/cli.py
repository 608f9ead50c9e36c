"""The ``fscc`` command: a thin shell over the public API (the only place that prints)."""

import argparse
import sys
import time


def _demo(args):
    import numpy as np
    from sklearn.pipeline import Pipeline

    from . import CalibratedFewShotClassifier, Conv6Embedder, evaluate_episodes
    from ._toy import make_toy_volumes

    t0 = time.perf_counter()
    X, y = make_toy_volumes(n_classes=12, n_per_class=60, box=16, noise=0.8,
                            random_state=args.seed)
    base = y < 7
    print(f"data: {base.sum()} base subtomograms of {len(np.unique(y[base]))} classes, "
          f"{(~base).sum()} of {len(np.unique(y[~base]))} novel classes, box 16^3")
    pipe = Pipeline([
        ("embed", Conv6Embedder(module__width=16, max_epochs=args.epochs, lr=0.01,
                                batch_size=70, random_state=args.seed, verbose=1)),
        ("clf", CalibratedFewShotClassifier(random_state=args.seed)),
    ])
    pipe.fit(X[base], y[base])
    for k_shot in (1, 5):
        r = evaluate_episodes(pipe, X[~base], y[~base], n_way=5, k_shot=k_shot,
                              n_query=15, n_episodes=args.episodes,
                              random_state=args.seed, n_jobs=args.n_jobs)
        print(f"5-way {k_shot}-shot accuracy: {r.mean:.3f} +- {r.ci95:.3f} "
              f"(95% CI, {args.episodes} episodes, chance 0.200)")
    print(f"seed {args.seed}, {time.perf_counter() - t0:.0f} s")


def build_parser():
    parser = argparse.ArgumentParser(
        prog="fscc", description="Few-shot classification of cryo-ET subtomograms."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser(
        "demo",
        help="pre-train, adapt to novel classes and report accuracy on built-in data",
        description="Pre-train Conv-6 on base classes of a small built-in dataset, "
        "adapt to 5 novel classes with 1 and 5 shots, print episodic accuracy.",
        epilog="example: fscc demo --seed 1 --episodes 200",
    )
    demo.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    demo.add_argument("--epochs", type=int, default=10, help="pre-training epochs")
    demo.add_argument("--episodes", type=int, default=100, help="episodes per setting")
    demo.add_argument("--n-jobs", type=int, default=1, help="parallel episodes")
    demo.set_defaults(func=_demo)
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except (ValueError, FileNotFoundError, FileExistsError) as exc:
        print(f"fscc: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
