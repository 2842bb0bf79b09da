"""`keras-wavevit convert`: an official checkpoint -> a Keras file and/or a preset.

The arguments only; the work is `keras_wavevit.weights.convert_checkpoint`
(read the checkpoint, build the model, load the weights, print what was
mapped, skipped and wrong, write `.weights.h5` or `.keras` atomically, and
with `--preset DIR` a preset directory: `keras_wavevit.presets`).
Errors (an unreadable checkpoint, a bad `--config`, a mismatch) are raised
as `ValueError`/`OSError` naming the file and the problem; `keras-wavevit`
prints them as one line and exits with status 2, writing nothing.

Example:

    keras-wavevit convert wavevit_s.pth.tar wavevit_s.weights.h5 --variant small
    keras-wavevit convert wavevit_s.pth.tar wavevit_s.keras --variant small
    keras-wavevit convert wavevit_s.pth.tar --preset wavevit_s_imagenet --variant small
    keras-wavevit convert wavevit_s.pth.tar wavevit_s_c10.weights.h5 \\
        --variant small --num-classes 10 --skip-head
"""

import argparse

from keras_wavevit.cli.arguments import image_size_argument
from keras_wavevit.config import PRESETS
from keras_wavevit.weights import convert_checkpoint


def configure_parser(parser):
    """Adds the `convert` arguments to an `argparse` parser.

    Args:
        parser: The `argparse.ArgumentParser` of the subcommand.

    Example:

    >>> import argparse
    >>> parser = argparse.ArgumentParser()
    >>> configure_parser(parser)
    >>> args = parser.parse_args(["w.pth.tar", "w.keras", "--variant", "small",
    ...                           "--image-size", "224x160"])
    >>> args.variant, args.image_size, args.token_label, args.skip_head, args.strict
    ('small', (224, 160), True, False, True)
    >>> parser.parse_args(["w.pth.tar", "--preset", "s_preset", "--variant", "small"]).preset
    's_preset'
    """
    parser.add_argument(
        "checkpoint", help="official checkpoint: .pth, .pth.tar, .npz or .safetensors"
    )
    parser.add_argument(
        "output", nargs="?", default=None,
        help="where to write: OUTPUT.weights.h5 or OUTPUT.keras (optional with --preset)",
    )
    _add_preset_arguments(parser)
    architecture = parser.add_mutually_exclusive_group(required=True)
    architecture.add_argument(
        "--variant", choices=tuple(PRESETS), help="named variant (S/B/L = small/base/large)"
    )
    architecture.add_argument(
        "--config",
        metavar="JSON",
        help="the architecture as a JSON file or inline JSON object of WaveViTConfig "
        'fields (the format of `train --model`; {"preset": "small", ...} changes a '
        "preset), for configurations that are not a named variant",
    )
    parser.add_argument(
        "--num-classes", type=int, default=1000, help="classes of the classifier"
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
        help="load what matches and report the rest instead of failing (entries "
        "holding NaN/inf are left out; a checkpoint of which nothing matches is "
        "still refused)",
    )
    parser.add_argument(
        "--image-size",
        type=image_size_argument(allow_any=True),
        default=argparse.SUPPRESS,
        metavar="SIZE",
        help="input size of the saved model: N, HxW or 'any' (default: the "
        "architecture's, 224 for small/base/large)",
    )


def _add_preset_arguments(parser):
    parser.add_argument(
        "--preset", metavar="DIR", default=None,
        help="also (or only) write a preset directory: config, weights, class names and "
        "the official evaluation preprocessing (crop_pct 0.96, bicubic); it loads with "
        "keras_wavevit.presets.load_preset(DIR), WaveViTSmall(weights=DIR) and "
        "keras-hub's from_preset(DIR) (after import keras_wavevit.hub)",
    )
    parser.add_argument(
        "--class-names", metavar="FILE", default=None,
        help="the preset's class names, one a line (default: the ImageNet-1k names "
        "for 1000 classes, none otherwise)",
    )


def run(args):
    """Converts a checkpoint as `configure_parser`'s arguments ask.

    Args:
        args: The parsed `argparse.Namespace`.

    Returns:
        0; errors are raised (see `keras_wavevit.weights.convert_checkpoint`).

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
    if "image_size" not in args:
        input_shape = None  # the architecture's
    elif args.image_size is None:
        input_shape = (None, None, 3)  # 'any'
    else:
        input_shape = (*args.image_size, 3)
    print(
        convert_checkpoint(
            args.checkpoint,
            args.output,
            args.variant or args.config,
            num_classes=args.num_classes,
            token_label=args.token_label,
            input_shape=input_shape,
            strict=args.strict,
            skip_head=args.skip_head,
            preset=args.preset,
            class_names=_read_class_names(args.class_names),
        )
    )
    return 0


def _read_class_names(path):
    if path is None:
        return None
    with open(path, encoding="utf-8") as file:
        names = [line.strip() for line in file if line.strip()]
    if not names:
        raise ValueError(f"The class-names file {path} holds no names.")
    return names
