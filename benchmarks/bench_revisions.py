"""This checkout's Wave-ViT step against an earlier git revision, in one process.

Separate processes on a shared 2-core machine drift by 10-25% from one
minute to the next, more than most single optimisations gain. This script
imports the package of a git revision (extracted with `git archive` and
renamed, so both versions load side by side), builds the same model from
both with the same weights, and times their steps round-robin: load
changes hit both alike, and the ratio is the optimisation's.

Training steps are `train_on_batch` with each version's own
`keras_wavevit.optimizers.AdamW` (the recipes' optimizer) and sparse
labels; inference steps are the model in a `tf.function`.

Models: `small` (Wave-ViT-S, 224), `cifar10` (the `cifar10` recipe's model,
32x32), `cifar10_fast` (`examples/cifar10_fast.json`, 32x32).

Usage:
    python benchmarks/bench_revisions.py --revision 9942cfd --model cifar10 --mode train
    python benchmarks/bench_revisions.py --revision HEAD~3 --model small --mode infer --batch 16
    python benchmarks/bench_revisions.py --revision HEAD --model small --mode infer \
        --precision mixed_bfloat16
"""

import argparse
import importlib
import os
import re
import subprocess
import sys
import tarfile
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import common  # noqa: E402
from bench_model import (  # noqa: E402
    CIFAR_MODELS,
    ROOT,
    build_model,
    default_batch,
    default_image_size,
    num_classes_of,
)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--revision", required=True, help="Git revision to compare with.")
    parser.add_argument("--model", default="cifar10", choices=["small", *CIFAR_MODELS])
    parser.add_argument("--mode", default="train", choices=("infer", "train"))
    parser.add_argument("--batch", type=int, default=None,
                        help="Default 16 for small, 128 for the 32x32 models.")
    parser.add_argument("--precision", default="float32",
                        choices=("float32", "mixed_bfloat16"),
                        help="Keras dtype policy of both models.")
    common.add_common_arguments(parser)
    parser.set_defaults(repeats=9)
    return parser.parse_args(argv)


def extract_revision(revision, directory):
    """Writes `revision`'s package to `directory` as `keras_wavevit_<hash>`.

    Returns:
        The renamed package's import name.
    """
    commit = subprocess.run(
        ["git", "rev-parse", "--short", revision], cwd=ROOT,
        capture_output=True, text=True, check=True,
    ).stdout.strip()
    name = f"keras_wavevit_{commit}"
    archive = os.path.join(directory, "package.tar")
    subprocess.run(
        ["git", "archive", "--format=tar", "-o", archive, commit, "keras_wavevit"],
        cwd=ROOT, check=True,
    )
    with tarfile.open(archive) as tar:
        tar.extractall(directory, filter="data")
    os.rename(os.path.join(directory, "keras_wavevit"), os.path.join(directory, name))
    pattern = re.compile(r"\bkeras_wavevit\b")
    for folder, _, files in os.walk(os.path.join(directory, name)):
        for file in files:
            if file.endswith(".py"):
                path = os.path.join(folder, file)
                with open(path) as handle:
                    text = handle.read()
                with open(path, "w") as handle:
                    handle.write(pattern.sub(name, text))
    return name


def main():
    args = parse_args()
    common.configure_environment(args)
    import keras_wavevit  # noqa: F401  (before TensorFlow: the package's oneDNN default)

    with tempfile.TemporaryDirectory() as directory:
        name = extract_revision(args.revision, directory)
        sys.path.insert(0, directory)
        versions = {"this checkout": keras_wavevit, name: importlib.import_module(name)}
        run(args, versions)


def run(args, versions):
    import keras
    import numpy as np
    import tensorflow as tf

    keras.mixed_precision.set_global_policy(args.precision)
    print(f"# {args.model} {args.mode} {args.precision}: this checkout against "
          f"{list(versions)[1]}")
    for line in common.machine_summary():
        print(f"- {line}")
    size = default_image_size(args.model)
    batch = args.batch or default_batch(args.model)
    rng = np.random.default_rng(0)
    x = tf.constant(rng.uniform(size=(batch, size, size, 3)).astype(np.float32))
    y = tf.constant(rng.integers(0, num_classes_of(args.model), size=(batch,)))
    steps, weights = {}, None
    for label, package in versions.items():
        model = build_model(args.model, size, num_classes_of(args.model), package=package)
        if weights is None:
            weights = model.get_weights()
        else:
            model.set_weights(weights)
        if args.mode == "infer":
            forward = tf.function(lambda images, model=model: model(images, training=False))
            steps[label] = lambda forward=forward: forward(x).numpy()
        else:
            optimizers = importlib.import_module(f"{package.__name__}.optimizers")
            model.compile(optimizer=optimizers.AdamW(1e-4),
                          loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
            steps[label] = lambda model=model: model.train_on_batch(x, y)
    medians = common.time_interleaved(steps, args.repeats, args.warmup)
    print(f"- batch {batch}; medians of {args.repeats} round-robin steps after "
          f"{args.warmup} warm-up\n")
    common.print_step_table("version", medians, batch, list(versions)[1], "the revision")
    print(f"\nload average at end: {common.load_average()}")


if __name__ == "__main__":
    main()
