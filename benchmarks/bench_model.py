"""Wave-ViT inference and training speed, FLOPs and memory, with baselines.

Every configuration (model x precision x jit x batch x mode) runs in a fresh
subprocess, so its peak memory (`ru_maxrss`) is its own and the global dtype
policy does not leak. In that same process the script measures a 2048^3
matmul in the configuration's compute dtype (the machine's practical peak
now), so the achieved GFLOP/s is reported as a fraction of a peak measured
under the same background load. Times are medians of `--repeats` runs after
`--warmup` runs.

FLOPs are counted from the model: the traced graph at batch 1 is walked and
every MatMul / BatchMatMul / Conv2D / DepthwiseConv2D contributes its
multiply-adds (MACs), the convention of the official 4.6 G MACs of
Wave-ViT-S at 224 (PyTorch counters report 9.2 GFLOP = 2 per MAC). Achieved
GFLOP/s counts 2 FLOPs per MAC; training counts 3x the forward MACs.

Models: `tiny` (the CIFAR config at its own input size, read from
`keras_wavevit.PRESETS`), `small`, `base`, `large` (224), and the
`keras.applications` baselines `resnet50` and `convnext_tiny` (224).

Usage:
    python benchmarks/bench_model.py --quick
    python benchmarks/bench_model.py --models small resnet50 convnext_tiny \
        --batch 16 --precision float32 mixed_bfloat16 --mode infer
    python benchmarks/bench_model.py --models tiny --batch 128 --mode train
    python benchmarks/bench_model.py --models small --fused off   # before fusion
"""

import argparse
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import common  # noqa: E402

BASELINES = ("resnet50", "convnext_tiny")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--models", nargs="+", default=["small", "tiny"] + list(BASELINES),
        help="tiny, small, base, large, resnet50, convnext_tiny.",
    )
    parser.add_argument("--batch", nargs="+", type=int, default=None,
                        help="Batch sizes (default 16 at 224, 128 for tiny).")
    parser.add_argument("--precision", nargs="+", default=["float32"],
                        choices=("float32", "mixed_bfloat16"))
    parser.add_argument("--jit", nargs="+", default=["off"], choices=("off", "on"),
                        help="jit_compile of the whole model (XLA).")
    parser.add_argument("--mode", nargs="+", default=["infer"], choices=("infer", "train"))
    parser.add_argument("--fused", choices=("on", "off"), default="on",
                        help="The library's fused kernels (KERAS_WAVEVIT_FUSED_KERNELS).")
    parser.add_argument("--image-size", type=int, default=None,
                        help="Override the input size of every model.")
    parser.add_argument("--json", help="Also write the results to this file.")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    common.add_common_arguments(parser)
    args = parser.parse_args(argv)
    if args.quick:
        args.repeats = min(args.repeats, 3)
        args.warmup = 1
        if args.batch is None:
            args.batch = [4]
    return args


# ----------------------------------------------------------------------------
# Child: one configuration.


def count_macs(model, image_size):
    """Multiply-adds of one image, from the traced graph's matmuls and convs."""
    import tensorflow as tf

    function = tf.function(lambda x: model(x, training=False))
    graph = function.get_concrete_function(
        tf.TensorSpec((1, image_size, image_size, 3), tf.float32)
    ).graph
    macs = 0

    def shape(tensor):
        return [int(d) for d in tensor.shape]

    def walk(graph):
        nonlocal macs
        for op in graph.get_operations():
            if op.type in ("MatMul", "BatchMatMulV2", "BatchMatMulV3", "BatchMatMul"):
                out = shape(op.outputs[0])
                a = shape(op.inputs[0])
                adj = op.get_attr("adj_x") if op.type != "MatMul" else op.get_attr("transpose_a")
                inner = a[-2] if adj else a[-1]
                count = inner
                for d in out:
                    count *= d
                macs += count
            elif op.type == "Conv2D":
                out = shape(op.outputs[0])
                kh, kw, cin, _ = shape(op.inputs[1])
                macs += out[0] * out[1] * out[2] * out[3] * kh * kw * cin
            elif op.type == "DepthwiseConv2dNative":
                out = shape(op.outputs[0])
                kh, kw, _, _ = shape(op.inputs[1])
                macs += out[0] * out[1] * out[2] * out[3] * kh * kw
            for attr in ("f", "then_branch", "else_branch", "body"):
                try:
                    name = op.get_attr(attr).name
                except (ValueError, AttributeError):
                    continue
                inner_function = graph._functions.get(name) if hasattr(graph, "_functions") else None
                if inner_function is not None and hasattr(inner_function, "graph"):
                    walk(inner_function.graph)

    walk(graph)
    return macs


def build_model(name, image_size, num_classes=1000):
    import keras

    import keras_wavevit

    shape = (image_size, image_size, 3)
    if name == "resnet50":
        return keras.applications.ResNet50(
            weights=None, input_shape=shape, classifier_activation=None
        )
    if name == "convnext_tiny":
        return keras.applications.ConvNeXtTiny(
            weights=None, input_shape=shape, classifier_activation=None
        )
    builder = getattr(keras_wavevit, f"WaveViT{name.capitalize()}")
    return builder(input_shape=shape, num_classes=num_classes)


def default_image_size(name):
    if name == "tiny":
        from keras_wavevit import PRESETS

        return PRESETS["tiny"].input_shape[0]
    return 224


def run_child(spec, args):
    import resource
    import time

    import numpy as np
    import tensorflow as tf
    import keras

    keras.mixed_precision.set_global_policy(spec["precision"])
    compute_dtype = tf.bfloat16 if spec["precision"] == "mixed_bfloat16" else tf.float32

    size = 2048
    a = tf.cast(tf.random.normal((size, size)), compute_dtype)
    b = tf.cast(tf.random.normal((size, size)), compute_dtype)
    matmul = tf.function(lambda a, b: tf.matmul(a, b))

    def peak():
        return common.time_interleaved(
            {"mm": lambda: matmul(a, b).numpy()}, max(3, args.repeats), 1
        )["mm"]

    image_size = spec["image_size"]
    batch = spec["batch"]
    num_classes = 10 if spec["model"] == "tiny" else 1000
    model = build_model(spec["model"], image_size, num_classes)
    macs = count_macs(model, image_size)
    rss_model = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    rng = np.random.default_rng(0)
    x = tf.constant(rng.uniform(size=(batch, image_size, image_size, 3)).astype(np.float32))
    y = tf.constant(rng.integers(0, num_classes, size=(batch,)))
    jit = spec["jit"] == "on"
    if spec["mode"] == "infer":
        forward = tf.function(lambda x: model(x, training=False), jit_compile=jit)

        def step():
            return forward(x).numpy()

        flops_per_image = 2 * macs
    else:
        model.compile(
            optimizer=keras.optimizers.AdamW(1e-4),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            jit_compile=jit,
        )

        def step():
            return model.train_on_batch(x, y)

        flops_per_image = 3 * 2 * macs
    peak_before = peak()
    step_time = common.time_interleaved({"step": step}, args.repeats, args.warmup)["step"]
    peak_after = peak()
    peak_gflops = 2 * size**3 / min(peak_before, peak_after) / 1e9
    images_per_second = batch / step_time
    achieved = images_per_second * flops_per_image / 1e9
    return dict(
        spec,
        macs=macs,
        images_per_second=images_per_second,
        step_ms=1e3 * step_time,
        gflops=achieved,
        peak_gflops=peak_gflops,
        rss_model_mb=rss_model / 1024,
        peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        load=common.load_average(),
    )


# ----------------------------------------------------------------------------
# Parent: the grid of configurations.


def main():
    args = parse_args()
    common.configure_environment(args)
    os.environ["KERAS_WAVEVIT_FUSED_KERNELS"] = "1" if args.fused == "on" else "0"
    if args.child:
        result = run_child(json.loads(args.child), args)
        print("RESULT " + json.dumps(result))
        return
    print("# Model benchmark")
    for line in common.machine_summary():
        print(f"- {line}")
    print(f"- fused kernels {args.fused}; repeats {args.repeats} (median), "
          f"warm-up {args.warmup}; each row a fresh process")
    print()
    results = []
    passthrough = [
        "--repeats", str(args.repeats), "--warmup", str(args.warmup),
        "--fused", args.fused, "--onednn", args.onednn,
    ] + (["--bfc-allocator"] if args.bfc_allocator else [])
    for model in args.models:
        image_size = args.image_size or default_image_size(model)
        batches = args.batch or ([128] if model == "tiny" else [16])
        for mode in args.mode:
            for precision in args.precision:
                for jit in args.jit:
                    for batch in batches:
                        spec = dict(model=model, image_size=image_size, batch=batch,
                                    mode=mode, precision=precision, jit=jit)
                        command = [sys.executable, os.path.abspath(__file__),
                                   "--child", json.dumps(spec)] + passthrough
                        completed = subprocess.run(command, capture_output=True, text=True)
                        lines = [line for line in completed.stdout.splitlines()
                                 if line.startswith("RESULT ")]
                        if completed.returncode or not lines:
                            print(f"FAILED {spec}:\n{completed.stderr[-2000:]}", flush=True)
                            continue
                        result = json.loads(lines[-1][len("RESULT "):])
                        results.append(result)
                        print(f"done {spec}: {result['images_per_second']:.2f} img/s "
                              f"(load {result['load']})", flush=True)
    headers = ["model", "size", "mode", "precision", "jit", "batch", "img/s", "step ms",
               "G MACs/img", "GFLOP/s", "matmul peak GFLOP/s", "% of peak",
               "peak RSS MB", "load"]
    rows = [
        [r["model"], r["image_size"], r["mode"], r["precision"], r["jit"], r["batch"],
         f"{r['images_per_second']:.2f}", f"{r['step_ms']:.0f}", f"{r['macs'] / 1e9:.3f}",
         f"{r['gflops']:.1f}", f"{r['peak_gflops']:.1f}",
         f"{100 * r['gflops'] / r['peak_gflops']:.0f}%", f"{r['peak_rss_mb']:.0f}", r["load"]]
        for r in results
    ]
    print()
    common.print_table(headers, rows)
    print(f"\nload average at end: {common.load_average()}")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(results, handle, indent=1)


if __name__ == "__main__":
    main()
