"""`keras-wavevit convert`: an official checkpoint -> a Keras file.

Builds the model (a named variant, or any configuration from a JSON file),
loads the checkpoint with `keras_wavevit.load_official_weights`, prints what
was mapped, what was skipped and any problem, and writes `.weights.h5` or
`.keras` atomically (an interrupted run never leaves a partial file under the
output name).

Example:

    keras-wavevit convert wavevit_s.pth.tar wavevit_s.weights.h5 --variant small
    keras-wavevit convert wavevit_s.pth.tar wavevit_s.keras --variant small
    keras-wavevit convert wavevit_s.pth.tar wavevit_s_c10.weights.h5 \\
        --variant small --num-classes 10 --skip-head
"""

import json
import sys
import warnings

from keras_wavevit.weights.official import (
    CheckpointMismatchError,
    atomic_save,
    describe_plan,
    load_official_weights,
    read_checkpoint,
)

VARIANT_NAMES = ("tiny", "small", "base", "large")


def configure_parser(parser):
    """Adds the `convert` arguments to an `argparse` parser.

    Args:
        parser: The `argparse.ArgumentParser` of the subcommand.

    Example:

    >>> import argparse
    >>> parser = argparse.ArgumentParser()
    >>> configure_parser(parser)
    >>> args = parser.parse_args(["w.pth.tar", "w.weights.h5", "--variant", "small"])
    >>> args.variant, args.token_label, args.skip_head, args.strict
    ('small', True, False, True)
    """
    parser.add_argument(
        "checkpoint", help="official checkpoint: .pth, .pth.tar, .npz or .safetensors"
    )
    parser.add_argument("output", help="where to write: OUTPUT.weights.h5 or OUTPUT.keras")
    architecture = parser.add_mutually_exclusive_group(required=True)
    architecture.add_argument(
        "--variant", choices=VARIANT_NAMES, help="named variant (S/B/L = small/base/large)"
    )
    architecture.add_argument(
        "--config",
        metavar="JSON",
        help="JSON file of keras_wavevit.WaveViT keyword arguments (embed_dims, "
        "num_heads, mlp_ratios, depths, sr_ratios, stem_hidden_dim, ...), for "
        "configurations that are not a named variant",
    )
    parser.add_argument(
        "--num-classes",
        type=int,
        default=None,
        help="classes of the classifier (default 1000, or the --config file's)",
    )
    parser.add_argument(
        "--no-token-label",
        dest="token_label",
        action="store_false",
        help="build without the auxiliary token head and drop the checkpoint's "
        "aux_head.* entries (the released checkpoints have them)",
    )
    parser.add_argument(
        "--skip-head",
        action="store_true",
        help="don't load head/aux_head (fine-tuning to another --num-classes)",
    )
    parser.add_argument(
        "--non-strict",
        dest="strict",
        action="store_false",
        help="load what matches and report the rest instead of failing",
    )
    parser.add_argument(
        "--image-size",
        type=int,
        default=None,
        help="input height and width of the saved model (default: the variant's, "
        "224 for small/base/large; 0 for any size)",
    )


def _build_model(args):
    import keras_wavevit

    kwargs = dict(token_label=args.token_label)
    if args.image_size is not None:
        kwargs["input_shape"] = (
            (None, None, 3) if args.image_size == 0 else (args.image_size, args.image_size, 3)
        )
    if args.variant is not None:
        kwargs["num_classes"] = 1000 if args.num_classes is None else args.num_classes
        return keras_wavevit.build_variant(args.variant, **kwargs)
    with open(args.config, encoding="utf-8") as file:
        config = json.load(file)
    if args.num_classes is not None:
        config["num_classes"] = args.num_classes
    config.update(kwargs)
    if config.get("input_shape") is not None:
        config["input_shape"] = tuple(config["input_shape"])
    return keras_wavevit.WaveViT(**config)


def run(args):
    """Converts a checkpoint as `configure_parser`'s arguments ask.

    Args:
        args: The parsed `argparse.Namespace`.

    Returns:
        0 on success; 1 when the checkpoint cannot be read or does not match
        the model (the reason goes to stderr and no output is written).

    Example:

    >>> import argparse
    >>> parser = argparse.ArgumentParser()
    >>> configure_parser(parser)
    >>> run(parser.parse_args(
    ...     ["wavevit_s.pth.tar", "wavevit_s.weights.h5", "--variant", "small"]
    ... ))  # doctest: +SKIP
    mapped 425 checkpoint entries (22,692,128 values) onto Keras weights
    ...
    """
    if not args.output.endswith((".weights.h5", ".keras")):
        print(
            f"error: OUTPUT must end in .weights.h5 or .keras; received {args.output}",
            file=sys.stderr,
        )
        return 1
    try:
        state_dict = read_checkpoint(args.checkpoint)
    except (FileNotFoundError, ImportError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    model = _build_model(args)
    if not args.token_label:
        dropped = sorted(name for name in state_dict if name.startswith("aux_head."))
        for name in dropped:
            del state_dict[name]
        if dropped:
            print(f"dropped {', '.join(dropped)} (--no-token-label)")
    try:
        with warnings.catch_warnings():
            # With --non-strict the problems are printed below, not warned.
            warnings.simplefilter("ignore", UserWarning)
            plan = load_official_weights(
                model, state_dict, strict=args.strict, skip_head=args.skip_head
            )
    except CheckpointMismatchError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(describe_plan(plan))
    atomic_save(model, args.output)
    print(f"wrote {args.output} ({model.name}, {model.count_params():,} values)")
    return 0
