"""Wave-ViT inference speed in each export runtime, with ratios to Keras, in one process.

The model (random weights) is exported with `keras_wavevit.export_formats`
to a SavedModel, ONNX, OpenVINO IR and LiteRT, then each runtime classifies
the same float32 pixel batch ([0, 255], at the model's size):

* `keras` - the Keras model in a TensorFlow graph (`tf.function`), with the
  library's default fused kernels: `normalize_images`, the model, softmax;
* `saved_model` - the SavedModel's `serving_float` signature (also resizes,
  here to the same size, and computes the class ids and top-5);
* `onnx` - ONNX Runtime, `CPUExecutionProvider`;
* `openvino` - OpenVINO Runtime on `CPU` (one infer request reused);
* `litert` - the LiteRT interpreter (XNNPACK), one interpreter per batch
  size, `num_threads` = the machine's cores.

The ONNX, OpenVINO and LiteRT graphs normalise and apply softmax too (see
`keras_wavevit.export_formats`). Every runtime uses its default threading
(all cores). Cases of one batch size are timed round-robin
(`common.time_interleaved`): medians of `--repeats` runs after `--warmup`.
The largest probability difference to Keras is printed beside each speed.

Usage:
    python benchmarks/bench_runtimes.py                  # Wave-ViT-S at 224, batch 1 and 8
    python benchmarks/bench_runtimes.py --model cifar    # examples/cifar10_fast.json
    python benchmarks/bench_runtimes.py --quick          # CIFAR config, batch 1 and 2, a check
"""

import argparse
import json
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import common  # noqa: E402

RUNTIMES = ("keras", "saved_model", "onnx", "openvino", "litert")
CIFAR_CONFIG = os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples", "cifar10_fast.json"
)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=("small", "cifar"), default="small",
                        help="Wave-ViT-S at 224 (1000 classes) or the CIFAR config (10 classes).")
    parser.add_argument("--batch", nargs="+", type=int, default=None,
                        help="Batch sizes (default 1 and 8).")
    parser.add_argument("--runtimes", nargs="+", choices=RUNTIMES, default=list(RUNTIMES))
    common.add_common_arguments(parser)
    args = parser.parse_args(argv)
    if args.quick:
        args.model = "cifar"
        args.repeats = min(args.repeats, 3)
        args.warmup = 1
        args.batch = args.batch or [1, 2]
    args.batch = args.batch or [1, 8]
    return args


def build_model(name):
    import keras

    import keras_wavevit

    keras.utils.set_random_seed(0)
    if name == "small":
        return keras_wavevit.WaveViTSmall(input_shape=(224, 224, 3))
    with open(CIFAR_CONFIG) as handle:
        config = json.load(handle)
    return keras_wavevit.WaveViT(**config, num_classes=10)


def export_all(model, runtimes, directory):
    """Exports every format `runtimes` needs: {runtime: (path, seconds)}."""
    from keras_wavevit.export_formats import export_model

    targets = {
        "saved_model": os.path.join(directory, "saved_model"),
        "onnx": os.path.join(directory, "wavevit.onnx"),
        "openvino": os.path.join(directory, "openvino"),
        "litert": os.path.join(directory, "wavevit.tflite"),
    }
    exported = {}
    for runtime in runtimes:
        if runtime == "keras":
            continue
        start = time.perf_counter()
        path = export_model(model, targets[runtime], format=runtime)
        exported[runtime] = (path, time.perf_counter() - start)
    return exported


def keras_predictor(model):
    import keras
    import tensorflow as tf

    from keras_wavevit.preprocessing import normalize_images

    forward = tf.function(lambda x: keras.ops.softmax(model(normalize_images(x), training=False)))
    return lambda images: forward(tf.constant(images)).numpy()


def runtime_predictor(runtime, path):
    """A function images -> probabilities running the exported file."""
    if runtime == "saved_model":
        import tensorflow as tf

        serve = tf.saved_model.load(path).signatures["serving_float"]
        return lambda images: serve(images=tf.constant(images))["probabilities"].numpy()
    if runtime == "onnx":
        import onnxruntime

        session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
        return lambda images: session.run(["probabilities"], {"images": images})[0]
    if runtime == "openvino":
        import openvino

        # float32 like the other runtimes (OpenVINO's default is bfloat16 on
        # CPUs with AVX512_BF16 or AMX).
        compiled = openvino.Core().compile_model(
            path, "CPU", {"INFERENCE_PRECISION_HINT": "f32"}
        )
        request = compiled.create_infer_request()
        return lambda images: request.infer({"images": images})["probabilities"]
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=path, num_threads=os.cpu_count())
    runner = interpreter.get_signature_runner("serving_default")
    return lambda images: runner(images=images)["probabilities"]


def versions():
    import importlib.metadata

    found = []
    for package in ("onnxruntime", "tf2onnx", "openvino", "ai-edge-litert"):
        try:
            found.append(f"{package} {importlib.metadata.version(package)}")
        except importlib.metadata.PackageNotFoundError:
            found.append(f"{package} (not installed)")
    return ", ".join(found)


def measure(model, exported, args, image_size):
    import numpy as np

    rows = []
    for batch in args.batch:
        images = np.random.default_rng(batch).uniform(
            0, 255, (batch, *image_size, 3)).astype("float32")
        predictors = {"keras": keras_predictor(model)} if "keras" in args.runtimes else {}
        for runtime, (path, _) in exported.items():
            predictors[runtime] = runtime_predictor(runtime, path)
        reference = predictors["keras"](images) if "keras" in predictors else None
        cases = {name: (lambda p=p: p(images)) for name, p in predictors.items()}
        medians = common.time_interleaved(cases, args.repeats, args.warmup)
        for runtime, seconds in medians.items():
            difference = (
                "-" if reference is None
                else f"{np.abs(predictors[runtime](images) - reference).max():.1e}"
            )
            ratio = "-" if "keras" not in medians else f"{medians['keras'] / seconds:.2f}x"
            convert = f"{exported[runtime][1]:.0f}" if runtime in exported else "-"
            rows.append((runtime, batch, f"{batch / seconds:.1f}", ratio, difference, convert))
    return rows


def main(argv=None):
    args = parse_args(argv)
    common.configure_environment(args)
    for line in common.machine_summary():
        print(line)
    print(versions())
    model = build_model(args.model)
    image_size = model.input_shape[1:3]
    print(f"model: {args.model} at {image_size[0]}x{image_size[1]}, {model.count_params():,} "
          f"parameters; repeats {args.repeats}, warmup {args.warmup}")
    with tempfile.TemporaryDirectory() as directory:
        exported = export_all(model, args.runtimes, directory)
        rows = measure(model, exported, args, image_size)
    print(f"load average at end: {common.load_average()}")
    common.print_table(
        ("runtime", "batch", "images/s", "vs keras", "max |p - p_keras|", "export s"), rows
    )


if __name__ == "__main__":
    main()
