"""Semantic segmentation on Wave-ViT features: an FPN head on the pyramid.

`include_top=False` turns any Wave-ViT into a backbone returning the stage
1-4 feature maps (`{"stage1": ..., "stage4": ...}`, NHWC, strides
`stem_stride * (1, 2, 4, 8)`). This script puts a small FPN / UPerNet-style
head on them -- 1x1 lateral convs, a top-down pathway, every level upsampled
to stage 1 and fused -- and trains backbone and head together on a toy task:
images with a bright square and a dark disc at random places, labelled per
pixel as background / square / disc. The loss falls within a few dozen
steps on a CPU.

Run:

    python examples/segmentation_head.py             # ~40 steps, < 1 min on CPU
    python examples/segmentation_head.py --steps 6 --run-eagerly  # smoke test

For real data use an official-size backbone, e.g.
`keras_wavevit.WaveViTSmall(include_top=False, input_shape=(None, None, 3))`
(strides 4, 8, 16, 32; sizes multiples of 32), and load pretrained weights.
"""

import argparse

import keras
import numpy as np

import keras_wavevit
from keras_wavevit.config import feature_strides

NUM_CLASSES = 3  # background, square, disc
KEYS = ("stage1", "stage2", "stage3", "stage4")


def toy_segmentation_data(samples, size, seed=0):
    """Images with one bright square and one dark disc, and their masks.

    Args:
        samples: Number of images.
        size: Height and width.
        seed: Random seed.

    Returns:
        `(images, masks)`: float32 `(samples, size, size, 3)` and int32
        `(samples, size, size)` with 0 = background, 1 = square, 2 = disc.

    Example:

    >>> images, masks = toy_segmentation_data(2, 32)
    >>> images.shape, masks.shape
    ((2, 32, 32, 3), (2, 32, 32))
    """
    rng = np.random.default_rng(seed)
    rows, cols = np.mgrid[:size, :size]
    images = rng.normal(0.0, 0.2, size=(samples, size, size, 3)).astype("float32")
    masks = np.zeros((samples, size, size), "int32")
    for index in range(samples):
        side = rng.integers(size // 5, size // 3)
        top, left = rng.integers(0, size - side, size=2)
        square = (rows >= top) & (rows < top + side) & (cols >= left) & (cols < left + side)
        radius = rng.integers(size // 8, size // 5)
        center = rng.integers(radius, size - radius, size=2)
        disc = (rows - center[0]) ** 2 + (cols - center[1]) ** 2 <= radius**2
        masks[index][square] = 1
        masks[index][disc] = 2  # the disc is drawn on top
        images[index][square & ~disc] += 1.0
        images[index][disc] -= 1.0
    return images, masks


def fpn_segmentation_model(backbone, num_classes, width=32):
    """An FPN / UPerNet-lite segmentation head on a Wave-ViT pyramid.

    Args:
        backbone: A Wave-ViT built with `include_top=False` (dict outputs).
        num_classes: Classes per pixel.
        width: Channels of the FPN levels.

    Returns:
        A `keras.Model` mapping images to per-pixel logits at the input
        resolution, `(batch, height, width, num_classes)`.

    Example:

    >>> backbone = keras_wavevit.WaveViT(
    ...     embed_dims=(8, 16, 32, 32), num_heads=(1, 1, 2, 2),
    ...     mlp_ratios=(2, 2, 2, 2), depths=(1, 1, 1, 1),
    ...     sr_ratios=(2, 1, 1, 1), stem_hidden_dim=8, stem_stride=2,
    ...     include_top=False, input_shape=(32, 48, 3))
    >>> fpn_segmentation_model(backbone, num_classes=3).output_shape
    (None, 32, 48, 3)
    """
    features = [backbone.output[key] for key in KEYS]
    laterals = [
        keras.layers.Conv2D(width, 1, name=f"lateral{level + 1}")(feature)
        for level, feature in enumerate(features)
    ]
    # Top-down: each level adds the upsampled coarser level.
    merged = [laterals[-1]]
    for level in range(len(laterals) - 2, -1, -1):
        upsampled = keras.layers.UpSampling2D(2, interpolation="bilinear")(merged[0])
        merged.insert(0, keras.layers.Add()([laterals[level], upsampled]))
    # Smooth every level and bring it to stage-1 resolution, then fuse.
    fused = []
    for level, feature in enumerate(merged):
        feature = keras.layers.Conv2D(
            width, 3, padding="same", activation="relu", name=f"smooth{level + 1}"
        )(feature)
        if level:
            feature = keras.layers.UpSampling2D(2**level, interpolation="bilinear")(feature)
        fused.append(feature)
    x = keras.layers.Concatenate()(fused)
    x = keras.layers.Conv2D(width, 3, padding="same", activation="relu", name="fuse")(x)
    x = keras.layers.Conv2D(num_classes, 1, name="classifier")(x)
    stem_stride = backbone.get_layer("patch_embed1").stride
    logits = keras.layers.UpSampling2D(stem_stride, interpolation="bilinear", name="logits")(x)
    return keras.Model(backbone.input, logits, name="wave_vit_fpn")


def main(argv=None):
    """Trains the toy segmentation model and reports the loss.

    Args:
        argv: Command-line arguments (default: `sys.argv[1:]`).

    Returns:
        `(loss_before, loss_after)`: per-pixel cross-entropy on held-out
        images before and after training.

    Example:

    >>> before, after = main(["--steps", "2"])  # doctest: +SKIP
    """
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=40, help="training steps")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--image-size", type=int, default=32, help="a multiple of 16")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--run-eagerly",
        action="store_true",
        help="skip graph tracing (quicker for a handful of steps, slower per step)",
    )
    args = parser.parse_args(argv)

    keras.utils.set_random_seed(args.seed)
    backbone = keras_wavevit.WaveViT(
        embed_dims=(16, 32, 64, 64),
        num_heads=(1, 2, 4, 4),
        mlp_ratios=(2, 2, 2, 2),
        depths=(1, 1, 1, 1),
        sr_ratios=(2, 1, 1, 1),
        stem_hidden_dim=16,
        stem_stride=2,
        include_top=False,
        input_shape=(None, None, 3),
    )
    model = fpn_segmentation_model(backbone, NUM_CLASSES)
    model.compile(
        optimizer=keras.optimizers.AdamW(learning_rate=3e-3, weight_decay=1e-4),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
        # XLA compilation takes longer than this whole short run on a CPU.
        jit_compile=False,
        run_eagerly=args.run_eagerly,
    )
    images, masks = toy_segmentation_data(
        args.steps * args.batch_size, args.image_size, args.seed
    )
    val_images, val_masks = toy_segmentation_data(32, args.image_size, args.seed + 1)
    before, _ = model.evaluate(val_images, val_masks, verbose=0)
    model.fit(images, masks, batch_size=args.batch_size, epochs=1, verbose=0)
    after, accuracy = model.evaluate(val_images, val_masks, verbose=0)
    print(f"pyramid strides {feature_strides(backbone.get_layer('patch_embed1').stride)}")
    print(
        f"{args.steps} steps: held-out loss {before:.3f} -> {after:.3f}, "
        f"pixel accuracy {accuracy:.3f}"
    )
    return before, after


if __name__ == "__main__":
    main()
