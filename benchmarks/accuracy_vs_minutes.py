"""Validation accuracy against wall-clock minutes, from finished training runs.

Reads each run's `log.csv` (one row per epoch: `val_accuracy`, `train_minutes`)
and `summary.json`, and prints a Markdown table of the accuracy each run had
reached at 15, 30 and 60 minutes (the last epoch finished by then), at its
end, and with the summary's test-time averages (mirror images; mirror images
and 1-pixel shifts, for runs trained with translations), then draws all runs'
curves into one PNG (the first run thicker, the legend below the plot).
Minutes count from the start of the run: for a time-budgeted run the time
spent before `fit` (reading the data, the throughput probe) is added to
`train_minutes`.

Usage:
    python benchmarks/accuracy_vs_minutes.py "recipe, 60 min=runs/cifar10" \
        "crop 0.8-1, 15 min=runs/crop08" --output benchmarks/results/accuracy_vs_minutes.png
"""

import argparse
import csv
import json
import os

MARKS = (15.0, 30.0, 60.0)


def read_curve(run_directory):
    """`(minutes, val_accuracy)` lists of a run, minutes counted from its start.

    Example:

    >>> minutes, accuracy = read_curve("runs/cifar10")  # doctest: +SKIP
    """
    with open(os.path.join(run_directory, "summary.json"), encoding="utf-8") as file:
        summary = json.load(file)
    before_fit = summary.get("time_budget", {}).get("timings", {}).get("elapsed_seconds", 0.0)
    with open(os.path.join(run_directory, "log.csv"), encoding="utf-8") as file:
        rows = list(csv.DictReader(file))
    minutes = [before_fit / 60.0 + float(row["train_minutes"]) for row in rows]
    return minutes, [float(row["val_accuracy"]) for row in rows], summary


def accuracy_at(minutes, accuracy, mark):
    """The accuracy of the last epoch finished by `mark` minutes (None before the first).

    Example:

    >>> accuracy_at([4.0, 8.0, 12.0], [0.4, 0.5, 0.6], 10.0)
    0.5
    """
    reached = [value for minute, value in zip(minutes, accuracy) if minute <= mark]
    return reached[-1] if reached else None


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", metavar="LABEL=RUN_DIR",
                        help="A label for the table and plot, and a finished run's directory.")
    parser.add_argument("--output", default=None, help="PNG to write (default: no plot).")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    runs = []
    for spec in args.runs:
        label, _, directory = spec.rpartition("=")
        if not label:
            raise SystemExit(f"Expected LABEL=RUN_DIR; received {spec!r}.")
        runs.append((label, *read_curve(directory)))
    header = " | ".join(f"{mark:g} min" for mark in MARKS)
    print(f"| run | epochs | {header} | end (min) | final val | flip-averaged "
          "| flips + shifts |")
    print("|---|---|" + "---|" * len(MARKS) + "---|---|---|---|")
    for label, minutes, accuracy, summary in runs:
        marks = " | ".join(
            "-" if accuracy_at(minutes, accuracy, mark) is None
            else f"{100 * accuracy_at(minutes, accuracy, mark):.1f}%" for mark in MARKS)
        averaged = " | ".join(
            "-" if summary.get(key) is None else f"{100 * summary[key]:.1f}%"
            for key in ("val_accuracy_flip_averaged", "val_accuracy_shift_averaged"))
        print(f"| {label} | {len(minutes)} | {marks} | "
              f"{summary.get('wall_clock_minutes', minutes[-1]):.1f} | "
              f"{100 * summary['val_accuracy']:.1f}% | {averaged} |")
    if args.output:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        legend_rows = (len(runs) + 1) // 2
        figure, axes = plt.subplots(figsize=(8, 4.5 + 0.2 * legend_rows))
        for index, (label, minutes, accuracy, _) in enumerate(runs):
            # The first run is the one the figure is about: drawn thicker.
            axes.plot(minutes, [100 * value for value in accuracy], marker="o", markersize=3,
                      linewidth=2.5 if index == 0 else 1.0, label=label)
        for mark in MARKS:
            axes.axvline(mark, color="grey", linewidth=0.5)
        axes.set_xlabel("wall clock since the run started (minutes)")
        axes.set_ylabel("validation accuracy (%)")
        axes.set_title("CIFAR-10, 2-core CPU: accuracy against wall clock")
        axes.grid(alpha=0.3)
        axes.legend(fontsize=7, ncol=2, loc="upper center", bbox_to_anchor=(0.5, -0.13))
        figure.tight_layout()
        os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
        figure.savefig(args.output, dpi=110)
        print(f"Wrote {args.output}")


if __name__ == "__main__":
    main()
