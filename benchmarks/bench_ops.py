"""Per-op timings behind the model numbers: exact GELU, LayerNorm, matmul.

All cases run in one process, timed round-robin (median of `--repeats`), in
float32 and bfloat16:

- GELU on an FFN hidden map of stage 1 (default (16, 56, 56, 512)), bias
  included: `tf.nn.gelu(approximate=False)` (what `keras.activations.gelu`
  runs, the code before), the erf formula as plain graph ops, and the fused
  kernel the library uses; forward and forward+backward.
- LayerNorm on a stage-1 token map (16, 56, 56, 64): Keras' layer vs ours.
- A 2048^3 matmul (the machine's practical peak) and a copy (x * s).

Usage:
    python benchmarks/bench_ops.py --quick
    python benchmarks/bench_ops.py --hidden-shape 16x28x28x1024
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import common  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hidden-shape", default="16x56x56x512")
    parser.add_argument("--norm-shape", default="16x56x56x64")
    common.add_common_arguments(parser)
    args = parser.parse_args()
    if args.quick:
        args.hidden_shape = "4x" + args.hidden_shape.split("x", 1)[1]
        args.norm_shape = "4x" + args.norm_shape.split("x", 1)[1]
        args.repeats, args.warmup = min(args.repeats, 3), 1
    common.configure_environment(args)

    import keras
    import numpy as np
    import tensorflow as tf

    from keras_wavevit.layers import fusion
    from keras_wavevit.layers.normalization import LayerNormalization

    def parse(text):
        return tuple(int(v) for v in text.split("x"))

    rng = np.random.default_rng(0)
    hidden = rng.normal(size=parse(args.hidden_shape)).astype(np.float32)
    bias = rng.normal(size=hidden.shape[-1:]).astype(np.float32)
    tokens = rng.normal(size=parse(args.norm_shape)).astype(np.float32)
    scale = tf.Variable(1.0)

    def forward_backward(function):
        def run(x):
            with tf.GradientTape() as tape:
                tape.watch(x)
                y = function(x)
            return tape.gradient(y, x, output_gradients=y)

        return run

    cases = {}
    for dtype in ("float32", "bfloat16"):
        x = tf.cast(tf.constant(hidden), dtype)
        b = tf.cast(tf.constant(bias), dtype)
        gelus = {
            "tf.nn.gelu": lambda t, b=b: tf.nn.gelu(t + b, approximate=False),
            "erf, graph ops": lambda t, b=b: fusion._bias_exact_gelu(t, b),
            "fused (ours)": lambda t, b=b: fusion.exact_gelu(t, b),
        }
        for name, function in gelus.items():
            for pass_name, wrapped in (("fwd", function), ("fwd+bwd", forward_backward(function))):
                traced = tf.function(wrapped)
                cases[f"GELU {pass_name} {dtype}: {name}"] = (
                    lambda traced=traced, x=x: traced(x).numpy()
                )
        t = tf.cast(tf.constant(tokens), dtype)
        stock = keras.layers.LayerNormalization(epsilon=1e-6, dtype=dtype)
        ours = LayerNormalization(epsilon=1e-6, dtype=dtype)
        for name, layer in (("keras", stock), ("fused (ours)", ours)):
            layer.build(t.shape)
            traced = tf.function(layer)
            cases[f"LayerNorm fwd {dtype}: {name}"] = lambda traced=traced, t=t: traced(t).numpy()
        a = tf.cast(tf.random.normal((2048, 2048)), dtype)
        matmul = tf.function(lambda a: tf.matmul(a, a))
        cases[f"matmul 2048^3 {dtype}"] = lambda matmul=matmul, a=a: matmul(a).numpy()
        copy = tf.function(lambda t: t * tf.cast(scale, t.dtype))
        cases[f"copy hidden map {dtype}"] = lambda copy=copy, x=x: copy(x).numpy()

    print("# Per-op benchmark")
    for line in common.machine_summary():
        print(f"- {line}")
    print(f"- hidden map {args.hidden_shape}, token map {args.norm_shape}; "
          f"repeats {args.repeats} interleaved (median), warm-up {args.warmup}")
    medians = common.time_interleaved(cases, args.repeats, args.warmup)
    rows = []
    for name, seconds in medians.items():
        extra = ""
        if name.startswith("matmul"):
            extra = f"{2 * 2048**3 / seconds / 1e9:.1f} GFLOP/s"
        rows.append([name, f"{1e3 * seconds:.1f}", extra])
    print()
    common.print_table(["case", "ms", ""], rows)
    print(f"\nload average at end: {common.load_average()}")


if __name__ == "__main__":
    main()
