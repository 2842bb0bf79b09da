"""Wave-ViT-S speed on every Keras backend, next to the official PyTorch model.

One command measures, each in its own fresh process:
- `keras_wavevit.WaveViTSmall(num_classes=1000)` on the `tensorflow`, `jax`
  and `torch` Keras backends (`KERAS_BACKEND` set before Keras is imported),
  float32: inference with `predict_on_batch` and one AdamW training step with
  `train_on_batch` on a fixed batch. The model is compiled the idiomatic way
  per backend: JAX with `jit_compile=True` (every step XLA-compiled),
  TensorFlow with `jit_compile=False` (a `tf.function` graph), PyTorch eager
  (`predict_on_batch` runs under `torch.no_grad`).
- the official PyTorch Wave-ViT-S (`wavevit_s` from
  `shared/reference/official`, `token_label=False`, the same drop-path rate
  0.1 as the Keras builder) with `--torch-threads` threads: `eval()` +
  `torch.no_grad()` inference and an AdamW training step.

Times are medians of `--repeats` runs after `--warmup` runs, inference and
training interleaved. The table gives images/s and the ratio to the official
figure of the same mode.

Usage:
    python benchmarks/bench_backends.py --batch 8 --repeats 3 --warmup 1
    python benchmarks/bench_backends.py --image-size 64 --repeats 2   # smoke test
"""

import argparse
import datetime
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import common  # noqa: E402

BACKENDS = ("tensorflow", "jax", "torch")
OFFICIAL = "official"
DROP_PATH_RATE = 0.1
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_OFFICIAL_DIR = os.path.join(ROOT, "..", "shared", "reference", "official")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", nargs="+", default=list(BACKENDS), choices=BACKENDS,
                        help="Keras backends to measure.")
    parser.add_argument("--no-official", action="store_true",
                        help="Skip the official PyTorch model.")
    parser.add_argument("--official-dir", default=DEFAULT_OFFICIAL_DIR,
                        help="Folder holding the official wavevit.py.")
    parser.add_argument("--torch-threads", type=int, default=2,
                        help="torch.set_num_threads for the official model and the "
                        "torch backend.")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    common.add_common_arguments(parser)
    args = parser.parse_args(argv)
    if args.quick:
        args.repeats, args.warmup, args.image_size = 2, 1, 64
    return args


# ----------------------------------------------------------------------------
# Children: one backend each.


def fixed_batch(args, channels_first):
    import numpy as np

    rng = np.random.default_rng(0)
    shape = (args.batch, args.image_size, args.image_size, 3)
    x = rng.uniform(size=shape).astype(np.float32)
    if channels_first:
        x = x.transpose(0, 3, 1, 2).copy()
    return x, rng.integers(0, 1000, size=(args.batch,))


def run_keras(backend, args):
    os.environ["KERAS_BACKEND"] = backend
    if backend == "torch":
        import torch

        torch.set_num_threads(args.torch_threads)
    import keras_wavevit  # before Keras imports TensorFlow: the package's oneDNN default

    import keras

    model = keras_wavevit.WaveViTSmall(
        num_classes=1000, input_shape=(args.image_size, args.image_size, 3)
    )
    model.compile(
        optimizer=keras.optimizers.AdamW(1e-4),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        jit_compile=backend == "jax",
    )
    x, y = fixed_batch(args, channels_first=False)
    seconds = common.time_interleaved(
        {"infer": lambda: model.predict_on_batch(x),
         "train": lambda: model.train_on_batch(x, y)},
        args.repeats, args.warmup,
    )
    library = {"tensorflow": "tensorflow", "jax": "jax", "torch": "torch"}[backend]
    version = __import__(library).__version__
    return dict(seconds, versions=f"keras {keras.__version__}, {library} {version}",
                jit_compile=model.jit_compile)


def run_official(args):
    import torch

    sys.path.insert(0, os.path.abspath(args.official_dir))
    import wavevit

    torch.set_num_threads(args.torch_threads)
    torch.manual_seed(0)
    model = wavevit.wavevit_s(
        num_classes=1000, token_label=False, drop_path_rate=DROP_PATH_RATE
    )
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    loss_function = torch.nn.CrossEntropyLoss()
    x, y = fixed_batch(args, channels_first=True)
    x, y = torch.from_numpy(x), torch.from_numpy(y)

    def infer():
        model.eval()
        with torch.no_grad():
            return model(x).numpy()

    def train():
        model.train()
        optimizer.zero_grad()
        loss = loss_function(model(x), y)
        loss.backward()
        optimizer.step()
        return loss.item()

    seconds = common.time_interleaved({"infer": infer, "train": train},
                                      args.repeats, args.warmup)
    return dict(seconds, versions=f"torch {torch.__version__}", jit_compile="eager")


# ----------------------------------------------------------------------------
# Parent: one process per backend, then the table.


def machine_lines():
    from keras_wavevit.hardware import cpu_description

    model, flags = cpu_description()
    simd = sorted(f for f in flags if f.startswith(("avx", "amx", "fma", "f16c")))
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                            capture_output=True, text=True).stdout.strip()
    return [
        f"date: {datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds')}",
        f"cpu: {model}, {os.cpu_count()} cores; SIMD flags: {' '.join(simd) or 'none'}",
        f"python {sys.version.split()[0]}, commit {commit or 'unknown'}",
        f"load average at start: {common.load_average()}",
    ]


def run_in_child(name, args):
    command = [sys.executable, os.path.abspath(__file__), "--child", name,
               "--batch", str(args.batch), "--image-size", str(args.image_size),
               "--repeats", str(args.repeats), "--warmup", str(args.warmup),
               "--torch-threads", str(args.torch_threads),
               "--official-dir", args.official_dir, "--onednn", args.onednn]
    command += ["--bfc-allocator"] if args.bfc_allocator else []
    environment = dict(os.environ, KERAS_BACKEND=name if name in BACKENDS else "tensorflow")
    start = time.perf_counter()
    completed = subprocess.run(command, capture_output=True, text=True, env=environment)
    lines = [line for line in completed.stdout.splitlines() if line.startswith("RESULT ")]
    if completed.returncode or not lines:
        print(f"FAILED {name}:\n{completed.stderr[-3000:]}", flush=True)
        return None
    result = json.loads(lines[-1][len("RESULT "):])
    result["load"] = common.load_average()
    print(f"done {name}: infer {args.batch / result['infer']:.2f} img/s, "
          f"train {args.batch / result['train']:.2f} img/s (load {result['load']}; "
          f"process {time.perf_counter() - start:.0f} s)",
          flush=True)
    return result


def table_rows(results, batch):
    official = results.get(OFFICIAL)
    rows = []
    for name, result in results.items():
        row = [name if name == OFFICIAL else f"keras {name}", str(result["jit_compile"])]
        for mode in ("infer", "train"):
            speed = batch / result[mode]
            row.append(f"{speed:.2f}")
            if official:
                row.append(f"{speed / (batch / official[mode]):.2f}x")
        rows.append(row + [result["versions"], result["load"]])
    return rows


def main():
    args = parse_args()
    common.configure_environment(args)
    if args.child:
        result = run_official(args) if args.child == OFFICIAL else run_keras(args.child, args)
        print("RESULT " + json.dumps(result))
        return
    print("# Wave-ViT-S per Keras backend vs the official PyTorch model")
    for line in machine_lines():
        print(f"- {line}")
    print(f"- float32, batch {args.batch}, {args.image_size}x{args.image_size}, "
          f"median of {args.repeats} after {args.warmup} warm-up; torch threads "
          f"{args.torch_threads}; each row a fresh process\n")
    names = list(args.backends) + ([] if args.no_official else [OFFICIAL])
    results = {name: run_in_child(name, args) for name in names}
    results = {name: result for name, result in results.items() if result}
    headers = ["model", "jit_compile", "infer img/s"]
    headers += ["vs official"] if OFFICIAL in results else []
    headers += ["train img/s"] + (["vs official"] if OFFICIAL in results else [])
    headers += ["versions", "load after"]
    print()
    common.print_table(headers, table_rows(results, args.batch))
    print(f"\nload average at end: {common.load_average()}")


if __name__ == "__main__":
    main()
