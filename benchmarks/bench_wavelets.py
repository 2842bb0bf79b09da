"""DWT2D + IDWT2D, forward and backward, against the baselines, in one run.

Cases (each a graph-mode `tf.function`, timed round-robin, median of
`--repeats` after `--warmup`):

- ours: `haar_dwt2d` then `haar_idwt2d` (the library, as the model calls it).
- ours, unfused: the same formulas traced under `fused_ops(False)`
  (plain TensorFlow graph ops, the implementation before kernel fusion).
- conv: the convolution formulation of the official code: four grouped
  (depthwise) stride-2 2x2 convolutions concatenated for the DWT, one
  grouped transposed convolution (`depthwise_conv2d_backprop_input`) after
  interleaving the sub-bands for the IDWT.
- pywt: `pywt.dwt2` + `pywt.idwt2` on NumPy arrays (NHWC, axes (1, 2)). pywt
  has no gradient; since the gradient of each transform is the other one,
  "forward+backward" for pywt runs dwt2, idwt2, dwt2, idwt2.
- copy: `x * s` for a variable `s` (reads and writes each element once, like
  one transform): the memory-bandwidth floor. Forward+backward of DWT+IDWT
  is four transforms, so its floor is 4 copies (2 for forward only).

Usage:
    python benchmarks/bench_wavelets.py            # (64,56,56,16), (64,28,28,32)
    python benchmarks/bench_wavelets.py --quick    # batch 16, fewer repeats
    python benchmarks/bench_wavelets.py --shapes 32x56x56x16 --bfc-allocator
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import common  # noqa: E402


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--shapes",
        nargs="+",
        default=["64x56x56x16", "64x28x28x32"],
        help="NHWC input shapes of the DWT, as BxHxWxC.",
    )
    parser.add_argument("--no-pywt", action="store_true", help="Skip the pywt case.")
    common.add_common_arguments(parser)
    args = parser.parse_args()
    if args.quick:
        args.shapes = [
            "16x" + shape.split("x", 1)[1] for shape in args.shapes
        ]
        args.repeats = min(args.repeats, 3)
        args.warmup = 1
    return args


def main():
    args = parse_args()
    common.configure_environment(args)
    import numpy as np
    import tensorflow as tf

    from keras_wavevit.layers.fusion import fused_ops
    from keras_wavevit.layers.wavelets import haar_dwt2d, haar_idwt2d

    subband_filters = 0.5 * np.array(
        [
            [[1, 1], [1, 1]],  # LL
            [[1, 1], [-1, -1]],  # LH
            [[1, -1], [1, -1]],  # HL
            [[1, -1], [-1, 1]],  # HH
        ],
        np.float32,
    )

    def conv_dwt(x):
        channels = x.shape[-1]
        outputs = []
        for band in subband_filters:
            kernel = tf.constant(np.tile(band[:, :, None, None], (1, 1, channels, 1)))
            outputs.append(tf.nn.depthwise_conv2d(x, kernel, [1, 2, 2, 1], "VALID"))
        return tf.concat(outputs, axis=-1)

    def conv_idwt(y):
        batch, height, width, channels4 = y.shape
        channels = channels4 // 4
        # [LL (C), LH (C), HL (C), HH (C)] -> per channel [LL, LH, HL, HH].
        interleaved = tf.reshape(
            tf.transpose(tf.reshape(y, (batch, height, width, 4, channels)), (0, 1, 2, 4, 3)),
            (batch, height, width, channels4),
        )
        kernel = np.tile(
            subband_filters.transpose(1, 2, 0)[:, :, None, :], (1, 1, channels, 1)
        )
        return tf.nn.depthwise_conv2d_backprop_input(
            (batch, 2 * height, 2 * width, channels),
            tf.constant(kernel),
            interleaved,
            [1, 2, 2, 1],
            "VALID",
        )

    def ours(x):
        return haar_idwt2d(haar_dwt2d(x))

    def conv(x):
        return conv_idwt(conv_dwt(x))

    scale = tf.Variable(1.0)

    def copy(x):
        return x * scale

    def forward_backward(function):
        def run(x, upstream):
            with tf.GradientTape() as tape:
                tape.watch(x)
                y = function(x)
            return y, tape.gradient(y, x, output_gradients=upstream)

        return run

    print("# DWT2D + IDWT2D benchmark")
    for line in common.machine_summary():
        print(f"- {line}")
    print(f"- repeats {args.repeats} (median), warm-up {args.warmup}")
    print()
    headers = [
        "shape", "pass", "ours ms", "ours unfused ms", "conv ms", "pywt ms",
        "copy ms", "conv / ours", "unfused / ours", "pywt / ours", "% of copy bw",
    ]
    rows = []
    for shape_text in args.shapes:
        shape = tuple(int(v) for v in shape_text.split("x"))
        rng = np.random.default_rng(0)
        x_np = rng.normal(size=shape).astype(np.float32)
        x = tf.constant(x_np)
        upstream = tf.constant(rng.normal(size=shape).astype(np.float32))
        compiled = {}
        with fused_ops(True):
            compiled["ours"] = (tf.function(ours), tf.function(forward_backward(ours)))
            compiled["ours"][0](x), compiled["ours"][1](x, upstream)
        with fused_ops(False):
            compiled["unfused"] = (tf.function(ours), tf.function(forward_backward(ours)))
            compiled["unfused"][0](x), compiled["unfused"][1](x, upstream)
        compiled["conv"] = (tf.function(conv), tf.function(forward_backward(conv)))
        compiled["copy"] = (tf.function(copy), None)

        # The formulations agree (and so the timings compare like with like).
        dwt_ours = tf.function(haar_dwt2d)(x).numpy()
        np.testing.assert_allclose(tf.function(conv_dwt)(x).numpy(), dwt_ours, atol=1e-5)
        for name in ("unfused", "conv"):
            np.testing.assert_allclose(
                compiled[name][0](x).numpy(), x_np, atol=1e-5, err_msg=name
            )
            np.testing.assert_allclose(
                compiled[name][1](x, upstream)[1].numpy(),
                compiled["ours"][1](x, upstream)[1].numpy(),
                atol=1e-5,
                err_msg=name,
            )

        def pywt_roundtrip(passes):
            import pywt

            def run():
                array = x_np
                for _ in range(passes):
                    coefficients = pywt.dwt2(array, "haar", axes=(1, 2))
                    array = pywt.idwt2(coefficients, "haar", axes=(1, 2))
                return array

            return run

        for pass_name, index, transforms in (("forward", 0, 2), ("forward+backward", 1, 4)):
            cases = {
                name: (lambda f=functions[index]: tf.nest.map_structure(
                    lambda t: t.numpy(), f(x) if index == 0 else f(x, upstream)))
                for name, functions in compiled.items()
                if functions[index] is not None
            }
            cases["copy"] = lambda: tuple(
                compiled["copy"][0](x).numpy() for _ in range(transforms)
            )
            if not args.no_pywt:
                cases["pywt"] = pywt_roundtrip(transforms // 2)
            medians = common.time_interleaved(cases, args.repeats, args.warmup)
            ms = {name: 1e3 * value for name, value in medians.items()}
            pywt_ms = ms.get("pywt")
            rows.append(
                [
                    shape_text,
                    pass_name,
                    f"{ms['ours']:.1f}",
                    f"{ms['unfused']:.1f}",
                    f"{ms['conv']:.1f}",
                    "-" if pywt_ms is None else f"{pywt_ms:.1f}",
                    f"{ms['copy']:.1f}",
                    f"{ms['conv'] / ms['ours']:.2f}x",
                    f"{ms['unfused'] / ms['ours']:.2f}x",
                    "-" if pywt_ms is None else f"{pywt_ms / ms['ours']:.2f}x",
                    f"{100 * ms['copy'] / ms['ours']:.0f}%",
                ]
            )
    common.print_table(headers, rows)
    print()
    print(f"copy ms = {{2, 4}} copies (the transforms' floor); load average at end: "
          f"{common.load_average()}")


if __name__ == "__main__":
    main()
