"""`keras-wavevit evaluate`: top-1/top-5 accuracy and a confusion matrix.

Arguments only; the work is `keras_wavevit.recipes.evaluation.evaluate_model`.
The data's classes must match the model's (by name where the model carries
names, as an exported SavedModel does; else by count); the PNG and JSON go to `--output`, by default
next to the model (for a SavedModel `<base>/<version>`: `<base>-<version>-evaluation/`,
never inside the served directory).

`--preprocessing official` evaluates with the official evaluation transform
(bicubic resize of the short side to floor(size / 0.96), centre crop; what
converted official checkpoints need); by default a `.keras` file is read
with the training recipe's bilinear resize and a SavedModel with the
preprocessing its export records. A SavedModel's image size is read from the
SavedModel: `--image-size` is then not needed.

Example:

    keras-wavevit evaluate runs/tiny/best.keras --data-dir cifar10/test
    keras-wavevit evaluate runs/tiny/saved_model/1 --data-dir train --subset validation
    keras-wavevit evaluate wavevit_s.keras --data-dir imagenet/val --preprocessing official
"""

import argparse

from keras_wavevit.cli.arguments import add_test_time_arguments, image_size_argument
from keras_wavevit.preprocessing import PREPROCESSINGS
from keras_wavevit.recipes.evaluation import SUBSETS, evaluate_model


def configure_parser(parser):
    """Adds the arguments of `keras-wavevit evaluate` to `parser`.

    Args:
        parser: An `argparse.ArgumentParser` (the `evaluate` subparser).

    Example:

    >>> parser = argparse.ArgumentParser()
    >>> configure_parser(parser)
    >>> args = parser.parse_args(["m.keras", "--data-dir", "d", "--image-size", "32"])
    >>> args.subset, args.image_size, args.preprocessing
    ('all', (32, 32), None)
    """
    parser.formatter_class = argparse.ArgumentDefaultsHelpFormatter
    parser.add_argument("model", help="a .keras file or a SavedModel version directory")
    parser.add_argument("--data-dir", help="image folder root/<class>/<image>")
    parser.add_argument("--dataset", help="TFDS dataset name (must be prepared)")
    parser.add_argument("--tfds-data-dir", help="TFDS data directory")
    parser.add_argument("--split", default="test", help="TFDS split to evaluate")
    parser.add_argument("--subset", choices=SUBSETS, default="all",
                        help="image folder: every image, or the training recipe's "
                        "validation/train split (see --validation-fraction)")
    parser.add_argument("--validation-fraction", type=float, default=0.1)
    parser.add_argument("--image-size", type=image_size_argument(), metavar="N|HxW",
                        help="size to read images at, the crop size with --preprocessing "
                        "official (default: the model's; a SavedModel's is read from it)")
    parser.add_argument("--preprocessing", choices=PREPROCESSINGS, default=None,
                        help="resize: bilinear resize to the image size (the training "
                        "recipe's); official: the official evaluation transform, bicubic "
                        "resize of the short side to floor(size / 0.96) then a centre crop "
                        "(for converted checkpoints). Default: resize for a .keras file, "
                        "the export's recorded preprocessing for a SavedModel")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--skip-bad-images", action="store_true",
                        help="skip image-folder files that are not whole images "
                        "(named in a warning) instead of stopping")
    add_test_time_arguments(parser)
    parser.add_argument("--output", help="directory for confusion_matrix.png and "
                        "evaluation.json (default: next to the model; for a SavedModel "
                        "BASE/VERSION: BASE-VERSION-evaluation)")


def run(args):
    """Runs `keras-wavevit evaluate` with parsed arguments.

    Args:
        args: The `argparse.Namespace` from `configure_parser`'s parser.

    Returns:
        0 on success.

    Example:

    >>> from keras_wavevit.cli import main
    >>> main(["evaluate", "runs/tiny/best.keras", "--data-dir", "test"])  # doctest: +SKIP
    0
    """
    result = evaluate_model(
        args.model, data_dir=args.data_dir, dataset=args.dataset,
        tfds_data_dir=args.tfds_data_dir, split=args.split, subset=args.subset,
        validation_fraction=args.validation_fraction, image_size=args.image_size,
        batch_size=args.batch_size, output=args.output,
        skip_bad_images=args.skip_bad_images, preprocessing=args.preprocessing,
        flip_average=args.flip_average, shift_average=args.shift_average,
    )
    for note in result["notes"]:
        print(f"Note: {note}")
    size = result["image_size"]
    at = "" if size is None else f" at {size[0]}x{size[1]}"
    views = [", scores averaged with the mirror images"] if result["flip_average"] else []
    shift = result["shift_average"]
    if shift:
        views.append(f"{', and' if views else ', scores averaged with'} the images shifted "
                     f"by {shift} pixel{'s' if shift > 1 else ''} diagonally")
    print(f"Preprocessing: {result['preprocessing']}{at}{''.join(views)}")
    print(f"Images: {result['count']}")
    print(f"Top-1 accuracy: {result['top1']:.4f}")
    print(f"Top-5 accuracy: {result['top5']:.4f}")
    print(f"Confusion matrix: {result['figure']}")
    print(f"Numbers: {result['report']}")
    return 0
