"""The optimizer's share of a training step: Keras AdamW, the fused-kernel AdamW, SGD.

Three copies of one Wave-ViT are compiled in one process, identical but for
the optimizer: `keras.optimizers.AdamW`, `keras_wavevit.optimizers.AdamW`
(the same update with TensorFlow's fused Adam kernel per variable) and
plain `keras.optimizers.SGD` (the cheapest update there is: the floor for
any optimizer). Their `train_on_batch` steps on one fixed batch are timed
round-robin; medians.

With `--ema M`, two more copies keep a moving average of the weights
(`use_ema=True`, momentum M; Keras updates it, one assign per variable).

Models: `cifar10` (the `cifar10` recipe's model, 32x32, batch 128 by
default) and `small` (Wave-ViT-S, 224, batch 16).

Usage:
    python benchmarks/bench_optimizer.py --model cifar10 --repeats 9 --warmup 2 [--ema 0.999]
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import common  # noqa: E402
from bench_model import build_model, default_batch, default_image_size, num_classes_of  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="cifar10", choices=("cifar10", "small"))
    parser.add_argument("--batch", type=int, default=None)
    parser.add_argument("--ema", type=float, default=None, metavar="MOMENTUM",
                        help="also time both AdamWs with a moving average of the weights")
    common.add_common_arguments(parser)
    args = parser.parse_args(argv)
    if args.quick:
        args.repeats, args.warmup, args.batch = 2, 1, args.batch or 8
    return args


def main():
    args = parse_args()
    common.configure_environment(args)
    import keras_wavevit  # noqa: F401  (before TensorFlow: the package's oneDNN default)
    import keras
    import numpy as np

    from keras_wavevit.optimizers import AdamW

    print("# Optimizer share of a training step")
    for line in common.machine_summary():
        print(f"- {line}")
    size, classes = default_image_size(args.model), num_classes_of(args.model)
    batch = args.batch or default_batch(args.model)
    optimizers = {
        "keras.optimizers.AdamW": lambda: keras.optimizers.AdamW(1e-4, weight_decay=0.05),
        "keras_wavevit.optimizers.AdamW": lambda: AdamW(1e-4, weight_decay=0.05),
        "keras.optimizers.SGD": lambda: keras.optimizers.SGD(1e-4),
    }
    if args.ema is not None:
        ema = dict(use_ema=True, ema_momentum=args.ema)
        optimizers["keras.optimizers.AdamW + EMA"] = lambda: keras.optimizers.AdamW(
            1e-4, weight_decay=0.05, **ema)
        optimizers["keras_wavevit.optimizers.AdamW + EMA"] = lambda: AdamW(
            1e-4, weight_decay=0.05, **ema)
    rng = np.random.default_rng(0)
    x = rng.uniform(size=(batch, size, size, 3)).astype("float32")
    y = rng.integers(0, classes, size=(batch,))
    steps = {}
    for name, make in optimizers.items():
        model = build_model(args.model, size, classes)
        model.compile(optimizer=make(),
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        steps[name] = lambda model=model: model.train_on_batch(x, y)
    print(f"- model {args.model}, batch {batch}, {len(model.trainable_variables)} trainable "
          f"variables; medians of {args.repeats} round-robin steps after {args.warmup} warm-up\n")
    seconds = common.time_interleaved(steps, args.repeats, args.warmup)
    common.print_step_table("optimizer", seconds, batch, "keras.optimizers.AdamW",
                            "Keras AdamW", ratio_digits=3)
    print(f"\nload average at end: {common.load_average()}")


if __name__ == "__main__":
    main()
