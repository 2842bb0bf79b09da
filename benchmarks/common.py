"""Shared helpers of the benchmark scripts: environment, machine, timing, tables.

Import this module before TensorFlow: `configure_environment` sets the
environment variables TensorFlow reads when it starts.
"""

import datetime
import os
import platform
import statistics
import subprocess
import time


def add_common_arguments(parser):
    parser.add_argument(
        "--bfc-allocator",
        action="store_true",
        help="Run TensorFlow's CPU kernels on its BFC allocator "
        "(TF_CPU_ALLOCATOR_USE_BFC=true) instead of the default malloc-based one.",
    )
    parser.add_argument(
        "--onednn",
        choices=("default", "on", "off"),
        default="default",
        help="TF_ENABLE_ONEDNN_OPTS (TensorFlow enables oneDNN by default only on "
        "CPUs with AVX-512 VNNI/BF16 or AMX).",
    )
    parser.add_argument("--repeats", type=int, default=5, help="Timed runs per case.")
    parser.add_argument("--warmup", type=int, default=2, help="Untimed runs per case.")
    parser.add_argument("--quick", action="store_true", help="Small, fast configuration.")


def configure_environment(args):
    """Sets TensorFlow's environment knobs; call before importing TensorFlow."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if args.bfc_allocator:
        os.environ["TF_CPU_ALLOCATOR_USE_BFC"] = "true"
    if args.onednn != "default":
        os.environ["TF_ENABLE_ONEDNN_OPTS"] = "1" if args.onednn == "on" else "0"


def machine_summary():
    """One line per fact: CPU, cores, SIMD flags, load, versions, knobs."""
    from keras_wavevit.hardware import cpu_description

    model, flags = cpu_description()
    if model == "unknown":
        model = platform.processor() or "unknown"
    simd = sorted(f for f in flags if f.startswith(("avx", "amx", "fma")))
    import keras
    import tensorflow as tf

    lines = [
        f"date: {datetime.datetime.now().isoformat(timespec='seconds')}",
        f"cpu: {model}, {os.cpu_count()} cores; flags: {' '.join(simd) or 'none'}",
        f"load average at start: {load_average()}",
        f"tensorflow {tf.__version__}, keras {keras.__version__}",
        "TF_CPU_ALLOCATOR_USE_BFC="
        f"{os.environ.get('TF_CPU_ALLOCATOR_USE_BFC', '(unset: malloc)')}, "
        f"TF_ENABLE_ONEDNN_OPTS={os.environ.get('TF_ENABLE_ONEDNN_OPTS', '(unset)')}",
    ]
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True, text=True, check=True,
            cwd=os.path.dirname(os.path.abspath(__file__)),
        ).stdout.strip()
        lines.append(f"commit: {commit}")
    except (OSError, subprocess.CalledProcessError):
        pass
    return lines


def load_average():
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f}"


def time_interleaved(cases, repeats, warmup):
    """Times `cases` ({name: zero-argument callable}) round-robin.

    Interleaving spreads the machine's background load evenly over the
    cases, so their ratios stay meaningful on a shared machine.

    Returns:
        {name: median seconds}.
    """
    for function in cases.values():
        for _ in range(warmup):
            function()
    times = {name: [] for name in cases}
    for _ in range(repeats):
        for name, function in cases.items():
            start = time.perf_counter()
            function()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}


def print_step_table(label, seconds, batch, baseline, baseline_label, ratio_digits=2):
    """Prints step times ({name: seconds}) as ms, images/s and speed vs `baseline`."""
    print_table(
        [label, "step ms", "images/s", f"speed vs {baseline_label}"],
        [[name, f"{1e3 * value:.0f}", f"{batch / value:.1f}",
          f"{seconds[baseline] / value:.{ratio_digits}f}x"] for name, value in seconds.items()],
    )


def print_table(headers, rows):
    """Prints a Markdown table."""
    cells = [[str(c) for c in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(headers)]
    print("| " + " | ".join(h.ljust(w) for h, w in zip(headers, widths)) + " |")
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for row in cells:
        print("| " + " | ".join(c.ljust(w) for c, w in zip(row, widths)) + " |")
