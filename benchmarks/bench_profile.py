"""Where a Wave-ViT step's milliseconds go: TensorFlow profiler, grouped by op kind.

One inference or training step is traced with `tf.profiler` after warm-up;
the trace's executor events (one line per TensorFlow inter-op thread) are
reduced to self times (an event's duration minus the events nested in it)
and grouped: dense matmuls, attention batch-matmuls, convolutions, depthwise
convolutions, softmax, the library's fused XLA loops (GELU, layer norm,
Haar DWT/IDWT), transposes/reshapes/slices, batch-norm arithmetic, the
optimizer update, other elementwise ops and the executor's own bookkeeping.
Backward ops are counted with their forward kind. Self times add up to the
threads' busy time, which exceeds the wall time when TensorFlow runs
independent ops side by side.

Training steps use `keras_wavevit.optimizers.AdamW`, the recipes' optimizer.

Models: `small` (Wave-ViT-S, 224), `cifar10` (the `cifar10` recipe's model,
32x32), `cifar10_fast` (`examples/cifar10_fast.json`, 32x32).

Usage:
    python benchmarks/bench_profile.py --model small --mode infer --batch 16
    python benchmarks/bench_profile.py --model cifar10 --mode train --batch 128 --ops 25
    python benchmarks/bench_profile.py --model cifar10 --mode train --names 30
    python benchmarks/bench_profile.py --model small --precision mixed_bfloat16 --ops 25
"""

import argparse
import collections
import glob
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import common  # noqa: E402
from bench_model import (  # noqa: E402
    CIFAR_MODELS,
    build_model,
    default_batch,
    default_image_size,
    num_classes_of,
)

# (group, predicate on the op type and the op's name), first match wins.
GROUPS = (
    ("optimizer update", lambda t, n: n.lower().startswith(("adam", "sgd"))),
    ("depthwise conv", lambda t, n: "Depthwise" in t),
    ("convolution", lambda t, n: "Conv2D" in t),
    ("attention batch-matmul", lambda t, n: "BatchMatMul" in t),
    ("dense matmul", lambda t, n: "MatMul" in t),
    ("softmax", lambda t, n: "Softmax" in t),
    ("casts", lambda t, n: t == "Cast"),
    ("fused XLA loops (GELU, LayerNorm, DWT/IDWT)",
     lambda t, n: "fusion" in t or t.startswith(("wrapped_", "ynn_", "Execute")) or
     t in ("ParallelFor", "Await", "Start", "BlockUntilReady", "Done")),
    ("batch norm arithmetic",
     lambda t, n: "batchnorm" in n or "moments" in n or
     any(part.startswith("bn") or "_bn" in part for part in n.split("/"))),
    ("bias add and its gradient", lambda t, n: t.startswith("BiasAdd")),
    ("transpose, reshape, slice, concat, pad",
     lambda t, n: any(k in t for k in ("Transpose", "Reshape", "Slice", "Concat", "Split",
                                       "Pad", "Tile", "Pack", "Unpack"))),
    ("executor bookkeeping", lambda t, n: t in ("Process", "ExecutorState::Process")),
)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="small", choices=["small", *CIFAR_MODELS])
    parser.add_argument("--mode", default="infer", choices=("infer", "train"))
    parser.add_argument("--batch", type=int, default=None,
                        help="Default 16 for small, 128 for the 32x32 models.")
    parser.add_argument("--precision", default="float32",
                        choices=("float32", "mixed_bfloat16"),
                        help="Keras dtype policy of the model.")
    parser.add_argument("--ops", type=int, default=15, help="Op types listed after the groups.")
    parser.add_argument("--names", type=int, default=0,
                        help="Single ops (type and graph name, i.e. the layer) listed last.")
    common.add_common_arguments(parser)
    return parser.parse_args(argv)


def self_times(directory):
    """{(op type, op name): self picoseconds} over the trace's executor threads."""
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    space = xplane_pb2.XSpace()
    path = glob.glob(os.path.join(directory, "**", "*.xplane.pb"), recursive=True)[0]
    with open(path, "rb") as handle:
        space.ParseFromString(handle.read())
    totals = collections.Counter()
    for plane in space.planes:
        if plane.name != "/host:CPU":
            continue
        for line in plane.lines:
            if not line.name.startswith("tf_Compute"):
                continue
            events = sorted(line.events, key=lambda e: (e.offset_ps, -e.duration_ps))
            own = [event.duration_ps for event in events]
            stack = []
            for index, event in enumerate(events):
                while stack and stack[-1][0] <= event.offset_ps:
                    stack.pop()
                if stack:
                    own[stack[-1][1]] -= event.duration_ps
                stack.append((event.offset_ps + event.duration_ps, index))
            for event, picoseconds in zip(events, own):
                label = plane.event_metadata[event.metadata_id].name
                name, _, kind = label.rpartition(":")
                totals[(kind or label, name.split("ExecutorState")[0])] += picoseconds
    return totals


def group_of(kind, name):
    for group, matches in GROUPS:
        if matches(kind, name):
            return group
    return "other elementwise and small ops"


def main():
    args = parse_args()
    common.configure_environment(args)
    import keras_wavevit  # noqa: F401  (before TensorFlow: the package's oneDNN default)
    import keras
    import numpy as np
    import tensorflow as tf

    keras.mixed_precision.set_global_policy(args.precision)
    print(f"# Op-time breakdown: {args.model} {args.mode} {args.precision}")
    for line in common.machine_summary():
        print(f"- {line}")
    size, classes = default_image_size(args.model), num_classes_of(args.model)
    model = build_model(args.model, size, classes)
    batch = args.batch or default_batch(args.model)
    rng = np.random.default_rng(0)
    x = tf.constant(rng.uniform(size=(batch, size, size, 3)).astype(np.float32))
    y = tf.constant(rng.integers(0, classes, size=(batch,)))
    if args.mode == "infer":
        forward = tf.function(lambda images: model(images, training=False))

        def step():
            return forward(x).numpy()
    else:
        from keras_wavevit.optimizers import AdamW

        model.compile(optimizer=AdamW(1e-4),  # the recipes' optimizer
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))

        def step():
            return model.train_on_batch(x, y)

    wall = common.time_interleaved({"step": step}, args.repeats, args.warmup)["step"]
    with tempfile.TemporaryDirectory() as directory:
        tf.profiler.experimental.start(directory)
        begin = time.perf_counter()
        step()
        traced_wall = time.perf_counter() - begin
        tf.profiler.experimental.stop()
        totals = self_times(directory)
    busy = sum(totals.values())
    groups, kinds = collections.Counter(), collections.Counter()
    for (kind, name), picoseconds in totals.items():
        groups[group_of(kind, name)] += picoseconds
        kinds[kind] += picoseconds
    print(f"- batch {batch}; step {1e3 * wall:.0f} ms untraced (median of {args.repeats}), "
          f"{1e3 * traced_wall:.0f} ms traced; threads busy {busy / 1e9:.0f} ms\n")
    common.print_table(
        ["group", "ms (self, all threads)", "share"],
        [[group, f"{ps / 1e9:.1f}", f"{100 * ps / busy:.1f}%"] for group, ps in groups.most_common()],
    )
    if args.ops:
        print()
        common.print_table(
            ["op type", "ms", "share"],
            [[kind, f"{ps / 1e9:.1f}", f"{100 * ps / busy:.1f}%"]
             for kind, ps in kinds.most_common(args.ops)],
        )
    if args.names:
        print()
        common.print_table(
            ["op", "ms", "share"],
            [[f"{kind} {name}", f"{ps / 1e9:.1f}", f"{100 * ps / busy:.1f}%"]
             for (kind, name), ps in totals.most_common(args.names)],
        )
    print(f"\nload average at end: {common.load_average()}")


if __name__ == "__main__":
    main()
