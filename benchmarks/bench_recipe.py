"""A training recipe end to end (tf.data + augmentation + step) vs its bare step.

In one process, on the recipe's own network, data pipeline and batch size:

- first pass: one epoch of the training pipeline read without training (for
  an image folder this decodes the JPEGs into the in-memory cache, which the
  recipe pays once, in its first epoch);
- end to end: `model.fit` on the pipeline, `--steps` steps per round; the
  step time is the median interval between consecutive batch ends (so
  Keras' per-epoch setup is not counted, the input pipeline is);
- bare step: `model.train_on_batch` on one fixed batch taken from the same
  pipeline, `--steps` steps per round.

The two are timed in alternating rounds after warm-up, so background load
hits both alike; each figure is the median over all rounds. The ratio
`end to end / bare` is what the input pipeline and augmentation cost the
training loop (1.0 = nothing).

Usage:
    python benchmarks/bench_recipe.py --data-dir /tmp/c10/train
    python benchmarks/bench_recipe.py --quick   # the shipped 1,000-image sample
"""

import argparse
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import common  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", default="cifar10", help="Named recipe or recipe file.")
    parser.add_argument("--data-dir", default=None,
                        help="Image folder (root/<class>/<image>); default: the shipped sample.")
    parser.add_argument("--steps", type=int, default=20, help="Steps per timed round.")
    parser.add_argument("--rounds", type=int, default=None,
                        help="Timed rounds of each case (default --repeats).")
    common.add_common_arguments(parser)
    args = parser.parse_args(argv)
    if args.quick:
        args.steps, args.repeats, args.warmup = 4, 2, 1
    if args.rounds is None:
        args.rounds = args.repeats
    return args


class BatchEndClock:
    """Records `time.perf_counter()` at every training batch end."""

    def __init__(self):
        import keras

        class Clock(keras.callbacks.Callback):
            def on_train_batch_end(inner, batch, logs=None):  # noqa: N805
                self.ends.append(time.perf_counter())

        self.ends = []
        self.callback = Clock()

    def intervals(self):
        return [b - a for a, b in zip(self.ends, self.ends[1:])]


def main():
    args = parse_args()
    common.configure_environment(args)
    from keras_wavevit.recipes import phases
    from keras_wavevit.recipes.network import build_model
    from keras_wavevit.recipes.train_config import TrainConfig

    import tensorflow as tf

    print("# Recipe end to end vs bare training step")
    for line in common.machine_summary():
        print(f"- {line}")
    config = TrainConfig.from_recipe(args.recipe, data_dir=args.data_dir)
    image_size = tuple(build_model(config.model, 10).input_shape[1:3])
    begin = time.perf_counter()
    data = phases.load_data(config, image_size)
    batches = 0
    for _ in data.train:
        batches += 1
    first_pass = time.perf_counter() - begin
    print(f"- recipe {args.recipe}: batch {config.batch_size}, {data.splits.num_train} "
          f"training images, {data.steps_per_epoch} steps per epoch; first pass over the "
          f"pipeline (decode + cache + augment, no training): {first_pass:.1f} s")
    network = phases.build_network(config, data, tf.distribute.get_strategy())
    stream = data.train.repeat()
    images, labels = next(iter(stream))
    clock = BatchEndClock()

    def end_to_end():
        clock.ends.clear()
        network.fit(stream, steps_per_epoch=args.steps, epochs=1, verbose=0,
                    callbacks=[clock.callback], shuffle=False)
        return clock.intervals()

    def bare():
        times = []
        for _ in range(args.steps):
            start = time.perf_counter()
            network.train_on_batch(images, labels)
            times.append(time.perf_counter() - start)
        return times

    for _ in range(args.warmup):
        end_to_end()
        bare()
    samples = {"end to end": [], "bare step": []}
    for _ in range(args.rounds):
        samples["end to end"] += end_to_end()
        samples["bare step"] += bare()
    step = {name: statistics.median(values) for name, values in samples.items()}
    rows = [[name, f"{1e3 * seconds:.1f}", f"{config.batch_size / seconds:.1f}",
             f"{step['bare step'] / seconds:.2f}"] for name, seconds in step.items()]
    print()
    common.print_table(["case", "step ms (median)", "images/s", "vs bare step"], rows)
    print(f"\n{args.rounds} rounds of {args.steps} steps each, after {args.warmup} warm-up "
          f"round(s); load average at end: {common.load_average()}")


if __name__ == "__main__":
    main()
