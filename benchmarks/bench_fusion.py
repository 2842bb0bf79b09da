"""Before/after of the fused ops, in one process, timed round-robin.

One model is traced twice: once as the library runs it (fused exact GELU
with the depthwise-conv bias, fused DWT/IDWT) and once under
`fused_ops(False)` (the same formulas as plain graph ops, i.e. the code
before fusion), then the two functions are timed alternately. On a shared,
loaded machine this ratio is far more trustworthy than two separate runs.
`--baseline-gelu` traces the "before" function with the previous activation
(`keras.activations.gelu(approximate=False)`, i.e. `tf.nn.gelu`) instead.

Usage:
    python benchmarks/bench_fusion.py --model small --batch 16
    python benchmarks/bench_fusion.py --model tiny --batch 128 --mode train
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import common  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="small")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--image-size", type=int, default=None)
    parser.add_argument("--mode", choices=("infer", "train"), default="infer")
    parser.add_argument("--precision", choices=("float32", "mixed_bfloat16"),
                        default="float32")
    parser.add_argument("--baseline-gelu", action="store_true",
                        help="'Before' uses keras.activations.gelu(approximate=False).")
    parser.add_argument("--only-layernorm", action="store_true",
                        help="'Before' keeps every fused kernel but runs the block "
                        "norms as keras.layers.LayerNormalization (isolates that step).")
    common.add_common_arguments(parser)
    args = parser.parse_args()
    if args.quick:
        args.repeats, args.warmup = min(args.repeats, 3), 1
    common.configure_environment(args)

    import contextlib
    from unittest import mock

    import keras
    import numpy as np
    import tensorflow as tf

    from keras_wavevit.layers import blocks, fusion, head, normalization
    from bench_model import build_model, default_image_size

    keras.mixed_precision.set_global_policy(args.precision)
    size = args.image_size or default_image_size(args.model)
    model = build_model(args.model, size, 10 if args.model == "tiny" else 1000)
    rng = np.random.default_rng(0)
    x = tf.constant(rng.uniform(size=(args.batch, size, size, 3)).astype(np.float32))
    y = tf.constant(rng.integers(0, model.output_shape[-1], size=(args.batch,)))
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)

    def step(x, y):
        if args.mode == "infer":
            return model(x, training=False)
        with tf.GradientTape() as tape:
            loss = loss_fn(y, model(x, training=True))
        return tape.gradient(loss, model.trainable_variables)

    def plain_gelu(x, bias=None):
        x = x if bias is None else x + keras.ops.cast(bias, x.dtype)
        return keras.activations.gelu(x, approximate=False)

    functions = {}
    with fusion.fused_ops(True):
        functions["fused"] = tf.function(step)
        functions["fused"].get_concrete_function(x, y)
    if args.only_layernorm:
        before = mock.patch.object(
            normalization, "layer_norm",
            lambda x, gamma, beta, epsilon: keras.ops.layer_normalization(
                x, gamma, beta, epsilon=epsilon),
        )
    else:
        # The FFN's GELU (blocks) and the class block's MLP GELU (head).
        gelu = plain_gelu if args.baseline_gelu else blocks.exact_gelu
        before = contextlib.ExitStack()
        for module in (blocks, head):
            before.enter_context(mock.patch.object(module, "exact_gelu", gelu))
    with fusion.fused_ops(args.only_layernorm), before:
        functions["before"] = tf.function(step)
        functions["before"].get_concrete_function(x, y)

    def run(function):
        return lambda: tf.nest.map_structure(lambda t: t.numpy(), function(x, y))

    if args.only_layernorm:
        before_text = "fused, but keras.layers.LayerNormalization in the blocks"
    else:
        before_text = ("tf.nn.gelu, " if args.baseline_gelu else "") + "unfused graph ops"
    print("# Fused ops: before/after")
    for line in common.machine_summary():
        print(f"- {line}")
    print(f"- {args.model} at {size}, batch {args.batch}, {args.mode}, {args.precision}; "
          f"'before' = {before_text}; "
          f"repeats {args.repeats} interleaved (median), warm-up {args.warmup}")
    medians = common.time_interleaved(
        {name: run(function) for name, function in functions.items()},
        args.repeats, args.warmup,
    )
    rows = [[name, f"{1e3 * t:.0f}", f"{args.batch / t:.2f}"] for name, t in medians.items()]
    print()
    common.print_table(["variant", "step ms", "img/s"], rows)
    print(f"\nspeed-up: {medians['before'] / medians['fused']:.2f}x; "
          f"load average at end: {common.load_average()}")


if __name__ == "__main__":
    main()
