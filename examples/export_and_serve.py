"""Export a Wave-ViT for TensorFlow Serving and predict from the SavedModel.

Usage:

    python examples/export_and_serve.py [MODEL.keras] [--out serving/wavevit]

Without MODEL.keras an untrained CIFAR-size `WaveViTTiny` is exported (the
predictions are then meaningless, the mechanics are the same). The second
half uses TensorFlow only, as a production client would: no Keras model and
no keras_wavevit import is needed to load and call the SavedModel. It asks
twice: with uint8 pixels (`serving_default`) and with the same images as
PNG files (`serving_bytes`, what a REST client sends as `{"b64": ...}`).

The same export from the command line:

    keras-wavevit export MODEL.keras serving/wavevit --class-names cat,dog,fox

and, where keras_wavevit is installed, the same client in one object:
`keras_wavevit.recipes.serving.SavedModelClassifier(version_dir).predict(images)`.
"""

import argparse
import os

import numpy as np

CIFAR10_CLASSES = [
    "airplane", "automobile", "bird", "cat", "deer",
    "dog", "frog", "horse", "ship", "truck",
]


def export(model_file, out, version):
    import keras

    import keras_wavevit

    if model_file:
        model = keras.saving.load_model(model_file, compile=False)
        class_names = None
    else:
        model = keras_wavevit.WaveViTTiny(num_classes=10)  # input (32, 32, 3)
        class_names = CIFAR10_CLASSES
    return keras_wavevit.export_saved_model(
        model, out, class_names=class_names, version=version, overwrite=True
    )


def predict(version_dir):
    import tensorflow as tf

    loaded = tf.saved_model.load(version_dir)
    serve = loaded.signatures["serving_default"]
    print("inputs: ", serve.structured_input_signature[1])
    print("outputs:", sorted(serve.structured_outputs))
    # Any size and batch: the graph resizes and normalises uint8 pixels itself.
    images = np.random.default_rng(0).integers(0, 256, (2, 64, 48, 3), dtype=np.uint8)
    from_pixels = serve(images=tf.constant(images))
    # The same images as encoded files: the graph decodes them too.
    files = tf.stack([tf.io.encode_png(image) for image in images])
    from_files = loaded.signatures["serving_bytes"](image_bytes=files)
    for name, outputs in (("pixels", from_pixels), ("PNG files", from_files)):
        for i in range(len(images)):
            print(
                f"{name}, image {i}: class {int(outputs['class_ids'][i])} "
                f"{outputs['classes'][i].numpy().decode()} "
                f"p={float(tf.reduce_max(outputs['probabilities'][i])):.3f}; top "
                f"{[label.decode() for label in outputs['top_k_classes'][i].numpy()]}"
            )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", nargs="?", help="a trained .keras file (optional)")
    parser.add_argument("--out", default=os.path.join("serving", "wavevit"))
    parser.add_argument("--version", type=int, default=1)
    args = parser.parse_args()
    version_dir = export(args.model, args.out, args.version)
    print(f"SavedModel written to {version_dir}")
    print(f"saved_model_cli show --dir {version_dir} --all")
    print(
        "docker run -p 8501:8501 -p 8500:8500 "
        f"-v {os.path.abspath(args.out)}:/models/wavevit -e MODEL_NAME=wavevit "
        "tensorflow/serving"
    )
    predict(version_dir)


if __name__ == "__main__":
    main()
