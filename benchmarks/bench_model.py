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
`keras_wavevit.PRESETS`), `cifar10_fast` (`examples/cifar10_fast.json`, 32x32),
`cifar10` (the model of the shipped `cifar10` recipe, 32x32), `small`, `base`,
`large` (224), and the `keras.applications` baselines `resnet50` and
`convnext_tiny` (224).

`--compare-official` runs the official PyTorch code (`shared/reference/official`)
on the same configuration, batch and precision, in its own fresh process just
before and just after the Keras one, and adds its images/s (the mean of the
two; both are shown) and our ratio to it (`vs official`). The official model is `wavevit_s/b/l` for `small/base/large`
and the official `WaveViT` class with the same dims/heads/depths/ratios for the
32x32 configurations (for a stem stride of 2, the first stem convolution's
stride is set to 1, which is what this library's `stem_stride=2` does; with
`stem_first_stride=2` it stays 2 and the projection's becomes 1).
Training is one AdamW step (`zero_grad`, forward, cross-entropy, backward,
step); `mixed_bfloat16` is `torch.autocast("cpu", torch.bfloat16)`. torch is
not a dependency of the project: pass `--official-python` to run the official
side in another virtual environment that has torch, numpy and pywavelets.

Usage:
    python benchmarks/bench_model.py --quick
    python benchmarks/bench_model.py --models small resnet50 convnext_tiny \
        --batch 16 --precision float32 mixed_bfloat16 --mode infer
    python benchmarks/bench_model.py --models tiny --batch 128 --mode train
    python benchmarks/bench_model.py --models small --fused off   # before fusion
    python benchmarks/bench_model.py --models small cifar10_fast --mode infer train \
        --compare-official --repeats 5 --warmup 2
"""

import argparse
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import common  # noqa: E402

BASELINES = ("resnet50", "convnext_tiny")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_OFFICIAL_DIR = os.path.join(ROOT, "..", "shared", "reference", "official")
CIFAR_MODELS = {
    "cifar10_fast": os.path.join(ROOT, "examples", "cifar10_fast.json"),
    "cifar10": None,  # the model of the named recipe
}
OFFICIAL_BUILDERS = {"small": "wavevit_s", "base": "wavevit_b", "large": "wavevit_l"}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--models", nargs="+", default=["small", "tiny"] + list(BASELINES),
        help="tiny, cifar10_fast, cifar10, small, base, large, resnet50, convnext_tiny.",
    )
    parser.add_argument("--compare-official", action="store_true",
                        help="Also run the official PyTorch model on every Wave-ViT "
                        "configuration and print the ratio to it.")
    parser.add_argument("--official-dir", default=DEFAULT_OFFICIAL_DIR,
                        help="Folder holding the official wavevit.py.")
    parser.add_argument("--official-python", default=sys.executable,
                        help="Python interpreter with torch for the official model.")
    parser.add_argument("--torch-threads", type=int, default=2,
                        help="torch.set_num_threads of the official model.")
    parser.add_argument("--batch", nargs="+", type=int, default=None,
                        help="Batch sizes (default 16 at 224, 128 for tiny).")
    parser.add_argument("--precision", nargs="+", default=["float32"],
                        choices=("float32", "mixed_bfloat16"))
    parser.add_argument("--jit", nargs="+", default=["off"], choices=("off", "on"),
                        help="jit_compile of the whole model (XLA).")
    parser.add_argument("--mode", nargs="+", default=["infer"], choices=("infer", "train"))
    parser.add_argument("--cpu-replicas", nargs="+", type=int, default=[1],
                        help="Training steps data-parallel on this many CPU replicas: "
                        "a MirroredStrategy over as many logical CPU devices, cores/N "
                        "intra-op threads each (the matmul peak is then measured on "
                        "those threads too). Inference rows always run on 1.")
    parser.add_argument("--fused", choices=("on", "off"), default="on",
                        help="The library's fused kernels (KERAS_WAVEVIT_FUSED_KERNELS).")
    parser.add_argument("--image-size", type=int, default=None,
                        help="Override the input size of every model.")
    parser.add_argument("--json", help="Also write the results to this file.")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--official-child", help=argparse.SUPPRESS)
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


def build_model(name, image_size, num_classes=1000, package=None):
    """Builds model `name`; Wave-ViTs from `package` (default: `keras_wavevit`)."""
    import keras

    if package is None:
        import keras_wavevit as package

    shape = (image_size, image_size, 3)
    if name == "resnet50":
        return keras.applications.ResNet50(
            weights=None, input_shape=shape, classifier_activation=None
        )
    if name == "convnext_tiny":
        return keras.applications.ConvNeXtTiny(
            weights=None, input_shape=shape, classifier_activation=None
        )
    if name in CIFAR_MODELS:
        return package.WaveViT(
            dict(cifar_model_config(name), input_shape=shape), num_classes=num_classes
        )
    builder = getattr(package, f"WaveViT{name.capitalize()}")
    return builder(input_shape=shape, num_classes=num_classes)


def cifar_model_config(name):
    """The architecture dict of a 32x32 configuration (JSON, no TensorFlow)."""
    path = CIFAR_MODELS[name] or os.path.join(
        ROOT, "keras_wavevit", "recipes", "named_recipes", "cifar10.json"
    )
    with open(path) as handle:
        config = json.load(handle)
    config = config.get("model", config)
    return {key: value for key, value in config.items() if not key.startswith("_")}


def default_image_size(name):
    if name == "tiny":
        from keras_wavevit import PRESETS

        return PRESETS["tiny"].input_shape[0]
    if name in CIFAR_MODELS:
        return 32
    return 224


def default_batch(name):
    """128 for the 32x32 models, 16 at 224."""
    return 128 if name == "tiny" or name in CIFAR_MODELS else 16


def num_classes_of(name):
    return 10 if name == "tiny" or name in CIFAR_MODELS else 1000


# ----------------------------------------------------------------------------
# Official child: the PyTorch code on one configuration.


def build_official(name, official_dir):
    sys.path.insert(0, os.path.abspath(official_dir))
    import torch
    import wavevit

    if name in OFFICIAL_BUILDERS:
        return getattr(wavevit, OFFICIAL_BUILDERS[name])(
            num_classes=1000, token_label=False
        )
    config = cifar_model_config(name)
    model = wavevit.WaveViT(
        num_classes=num_classes_of(name), token_label=False,
        stem_hidden_dim=config["stem_hidden_dim"], embed_dims=config["embed_dims"],
        num_heads=config["num_heads"], mlp_ratios=config["mlp_ratios"],
        depths=config["depths"], sr_ratios=config["sr_ratios"],
        drop_path_rate=config.get("drop_path_rate", 0.0),
    )
    stem_stride = config.get("stem_stride", 4)
    first_stride = config.get("stem_first_stride") or stem_stride // 2
    first_conv = next(m for m in model.patch_embed1.modules()
                      if isinstance(m, torch.nn.Conv2d))
    first_conv.stride = (first_stride, first_stride)
    proj_stride = stem_stride // first_stride
    model.patch_embed1.proj.stride = (proj_stride, proj_stride)
    return model


def run_official_child(spec, args):
    import numpy as np
    import torch

    torch.set_num_threads(args.torch_threads)
    torch.manual_seed(0)
    model = build_official(spec["model"], args.official_dir)
    batch, size = spec["batch"], spec["image_size"]
    rng = np.random.default_rng(0)
    x = torch.from_numpy(rng.uniform(size=(batch, 3, size, size)).astype(np.float32))
    y = torch.from_numpy(rng.integers(0, num_classes_of(spec["model"]), size=(batch,)))
    autocast = spec["precision"] == "mixed_bfloat16"
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    loss_function = torch.nn.CrossEntropyLoss()

    def infer():
        model.eval()
        with torch.no_grad(), torch.autocast("cpu", torch.bfloat16, enabled=autocast):
            return model(x).float().numpy()

    def train():
        model.train()
        optimizer.zero_grad()
        with torch.autocast("cpu", torch.bfloat16, enabled=autocast):
            loss = loss_function(model(x).float(), y)
        loss.backward()
        optimizer.step()
        return loss.item()

    step = infer if spec["mode"] == "infer" else train
    seconds = common.time_interleaved({"step": step}, args.repeats, args.warmup)["step"]
    return dict(spec, images_per_second=batch / seconds, step_ms=1e3 * seconds,
                torch=torch.__version__, load=common.load_average())


def cpu_replicas_strategy(replicas):
    """The default strategy, or a MirroredStrategy over `replicas` logical CPUs.

    Each replica's ops run on `cores // replicas` threads, `replicas` ops side
    by side. Must run before TensorFlow starts (a fresh child process).
    """
    import tensorflow as tf

    from keras_wavevit.recipes.distribute import configure_logical_cpus

    if replicas == 1:
        return tf.distribute.get_strategy()
    cores = len(os.sched_getaffinity(0))
    tf.config.threading.set_inter_op_parallelism_threads(replicas)
    tf.config.threading.set_intra_op_parallelism_threads(max(1, cores // replicas))
    return tf.distribute.MirroredStrategy(configure_logical_cpus(replicas))


def run_child(spec, args):
    import resource
    import time

    import numpy as np

    import keras_wavevit  # noqa: F401  (before TensorFlow, so its oneDNN default applies)
    import tensorflow as tf
    import keras

    strategy = cpu_replicas_strategy(spec.get("replicas", 1))

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
    num_classes = num_classes_of(spec["model"])
    with strategy.scope():
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
        with strategy.scope():
            model.compile(
                optimizer=keras.optimizers.AdamW(1e-4),
                loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                jit_compile=jit,
            )
            model.optimizer.build(model.trainable_variables)
        # Keras' own step on a distributed iterator: each replica takes its share
        # of the batch (`train_on_batch` would give every replica all of it).
        iterator = iter(strategy.experimental_distribute_dataset(
            tf.data.Dataset.from_tensors((x, y)).repeat()
        ))
        model.make_train_function()

        def step():
            return {name: float(value) for name, value in
                    model.train_function(iterator).items()}

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


def has_official(model):
    return model in OFFICIAL_BUILDERS or model in CIFAR_MODELS


def measure_row(spec, args, passthrough, official_passthrough):
    """One Keras configuration, and with --compare-official the official model.

    The official model runs just before and just after the Keras row: the
    mean of the two is its figure, their spread the machine's drift meanwhile.
    """
    official_command = [args.official_python, "--official-child", json.dumps(spec)]
    official_command += official_passthrough
    official_spec = dict(spec, model=f"official {spec['model']}")
    compare = args.compare_official and has_official(spec["model"])
    officials = [run_in_child(official_command, official_spec)] if compare else []
    result = run_in_child([sys.executable, "--child", json.dumps(spec)] + passthrough, spec)
    if result is None or not compare:
        return result
    officials.append(run_in_child(official_command, official_spec))
    speeds = [official["images_per_second"] for official in officials if official]
    if speeds:
        result["official"] = dict(images_per_second=sum(speeds) / len(speeds), runs=speeds,
                                  torch=next(o for o in officials if o)["torch"])
    return result


def run_in_child(command, spec):
    """Runs `python bench_model.py <flags>` in a fresh process; its RESULT dict."""
    command = [command[0], os.path.abspath(__file__)] + command[1:]
    completed = subprocess.run(command, capture_output=True, text=True)
    lines = [line for line in completed.stdout.splitlines() if line.startswith("RESULT ")]
    if completed.returncode or not lines:
        print(f"FAILED {spec}:\n{completed.stderr[-2000:]}", flush=True)
        return None
    result = json.loads(lines[-1][len("RESULT "):])
    print(f"done {spec}: {result['images_per_second']:.2f} img/s "
          f"(load {result['load']})", flush=True)
    return result


def main():
    args = parse_args()
    common.configure_environment(args)
    os.environ["KERAS_WAVEVIT_FUSED_KERNELS"] = "1" if args.fused == "on" else "0"
    if args.child:
        result = run_child(json.loads(args.child), args)
        print("RESULT " + json.dumps(result))
        return
    if args.official_child:
        result = run_official_child(json.loads(args.official_child), args)
        print("RESULT " + json.dumps(result))
        return
    print("# Model benchmark")
    for line in common.machine_summary():
        print(f"- {line}")
    print(f"- fused kernels {args.fused}; repeats {args.repeats} (median), "
          f"warm-up {args.warmup}; each row a fresh process"
          + (f"; official: torch threads {args.torch_threads}, a fresh process just "
             "before and just after the Keras row" if args.compare_official else ""))
    print()
    results = []
    official_passthrough = [
        "--repeats", str(args.repeats), "--warmup", str(args.warmup),
        "--official-dir", args.official_dir, "--torch-threads", str(args.torch_threads),
    ]
    passthrough = [
        "--repeats", str(args.repeats), "--warmup", str(args.warmup),
        "--fused", args.fused, "--onednn", args.onednn,
    ] + (["--bfc-allocator"] if args.bfc_allocator else [])
    for model in args.models:
        image_size = args.image_size or default_image_size(model)
        batches = args.batch or [default_batch(model)]
        for mode in args.mode:
            for precision in args.precision:
                for jit in args.jit:
                    for batch in batches:
                        for replicas in args.cpu_replicas if mode == "train" else [1]:
                            spec = dict(model=model, image_size=image_size, batch=batch,
                                        mode=mode, precision=precision, jit=jit,
                                        replicas=replicas)
                            result = measure_row(spec, args, passthrough,
                                                 official_passthrough)
                            if result is not None:
                                results.append(result)
    headers = ["model", "size", "mode", "precision", "jit", "batch", "replicas", "img/s",
               "step ms", "G MACs/img", "GFLOP/s", "matmul peak GFLOP/s", "% of peak",
               "peak RSS MB", "load"]
    if args.compare_official:
        headers[8:8] = ["official img/s", "vs official"]
    rows = []
    for r in results:
        row = [r["model"], r["image_size"], r["mode"], r["precision"], r["jit"], r["batch"],
               str(r["replicas"]), f"{r['images_per_second']:.2f}", f"{r['step_ms']:.0f}",
               f"{r['macs'] / 1e9:.3f}",
               f"{r['gflops']:.1f}", f"{r['peak_gflops']:.1f}",
               f"{100 * r['gflops'] / r['peak_gflops']:.0f}%", f"{r['peak_rss_mb']:.0f}",
               r["load"]]
        if args.compare_official:
            official = r.get("official")
            runs = "/".join(f"{speed:.2f}" for speed in official["runs"]) if official else ""
            row[8:8] = ([f"{official['images_per_second']:.2f} ({runs})",
                         f"{r['images_per_second'] / official['images_per_second']:.2f}x"]
                        if official else ["-", "-"])
        rows.append(row)
    print()
    common.print_table(headers, rows)
    print(f"\nload average at end: {common.load_average()}")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(results, handle, indent=1)


if __name__ == "__main__":
    main()
