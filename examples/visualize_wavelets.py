"""An image's four Haar sub-bands and its lossless reconstruction.

The figure of the seed article: `DWT2D` splits an image into a low-frequency
approximation (LL) and three detail sub-bands (LH: horizontal edges, HL:
vertical edges, HH: diagonals) at half resolution; `IDWT2D` puts them back
together without loss. This is why Wave-ViT can downsample keys and values
with a DWT instead of pooling: nothing is thrown away.

    python examples/visualize_wavelets.py                    # a shipped CIFAR-10 image
    python examples/visualize_wavelets.py --image photo.jpg --output wavelets.png

The script also checks the sub-bands against PyWavelets (`pywt.dwt2(x,
"haar")`: LL = cA, LH = cH, HL = cV, HH = cD) and prints the reconstruction
error.
"""

import argparse
import glob
import os

import numpy as np
import tensorflow as tf

import keras_wavevit
from keras_wavevit.recipes.data import sample_data_dir

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--image", help="an image file (default: a shipped CIFAR-10 cat)")
parser.add_argument("--output", default="wavelets.png")
args = parser.parse_args()

path = args.image or sorted(glob.glob(os.path.join(sample_data_dir(), "cat", "*.jpg")))[0]
image = tf.io.decode_image(tf.io.read_file(path), channels=3, expand_animations=False)
height, width = (int(image.shape[0]) // 2) * 2, (int(image.shape[1]) // 2) * 2
pixels = tf.cast(image[:height, :width], tf.float32)[tf.newaxis] / 255.0  # (1, H, W, 3)

# DWT2D: (1, H, W, C) -> (1, H/2, W/2, 4C), channels [LL (C), LH (C), HL (C), HH (C)].
subbands = keras_wavevit.layers.DWT2D()(pixels)
ll, lh, hl, hh = np.split(np.asarray(subbands[0]), 4, axis=-1)
reconstruction = np.asarray(keras_wavevit.layers.IDWT2D()(subbands)[0])
error = np.max(np.abs(reconstruction - np.asarray(pixels[0])))
print(f"{path}: {width}x{height}, max |IDWT(DWT(x)) - x| = {error:.2e}")

try:
    import pywt

    gray = np.asarray(pixels[0]).mean(axis=-1)
    c_a, (c_h, c_v, c_d) = pywt.dwt2(gray, "haar")
    ours = [band.mean(axis=-1) for band in (ll, lh, hl, hh)]
    worst = max(np.max(np.abs(o - p)) for o, p in zip(ours, (c_a, c_h, c_v, c_d)))
    print(f"largest difference to pywt.dwt2(x, 'haar'): {worst:.2e}")
except ImportError:
    print("pywt is not installed: skipped the comparison with PyWavelets.")

import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def show_detail(axis, band, title):
    magnitude = np.abs(band).mean(axis=-1)
    axis.imshow(magnitude, cmap="gray", vmin=0, vmax=max(magnitude.max(), 1e-6))
    axis.set_title(title)


figure, axes = plt.subplots(2, 3, figsize=(9, 6.4))
axes[0, 0].imshow(np.asarray(pixels[0]))
axes[0, 0].set_title(f"image {width}x{height}")
axes[0, 1].imshow(np.clip(ll / 2.0, 0, 1))  # LL = 2 x the 2x2 mean
axes[0, 1].set_title(f"LL (approximation) {width // 2}x{height // 2}")
show_detail(axes[0, 2], lh, "LH (horizontal detail)")
show_detail(axes[1, 0], hl, "HL (vertical detail)")
show_detail(axes[1, 1], hh, "HH (diagonal detail)")
axes[1, 2].imshow(np.clip(reconstruction, 0, 1))
axes[1, 2].set_title(f"IDWT reconstruction\nmax error {error:.1e}")
for axis in axes.ravel():
    axis.axis("off")
figure.suptitle("Haar DWT2D sub-bands and lossless IDWT2D reconstruction")
figure.tight_layout()
figure.savefig(args.output, dpi=100)
print(f"wrote {args.output}")
