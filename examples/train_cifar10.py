"""Train a Wave-ViT on CIFAR-10, step by step, with plain Keras.

This script is the `keras-wavevit train` recipe written out as a tutorial:
every step is a few lines of Keras you can change. It runs offline on the
CIFAR-10 sample shipped inside the package (1,000 images), or on the full
training set as an image folder:

    python examples/train_cifar10.py                              # shipped sample
    python examples/train_cifar10.py --data-dir cifar10/train --epochs 30

(`cifar10/train/<class>/*.jpg`, e.g. unpacked from a CIFAR-10 JPEG archive.)
The same recipe as one command, with resuming, plots and export:
`keras-wavevit train --data-dir cifar10/train`, or from Python:

    from keras_wavevit.recipes.training import TrainConfig, train
    train(TrainConfig(data_dir="cifar10/train", epochs=30, seed=0))
"""

import argparse
import os

import keras
import numpy as np
import tensorflow as tf

import keras_wavevit
from keras_wavevit.recipes import augmentation as augment, data, plots
from keras_wavevit.export import export_saved_model

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--data-dir", help="image folder root/<class>/*.jpg (default: the sample)")
parser.add_argument("--epochs", type=int, default=3)
parser.add_argument("--batch-size", type=int, default=64)
parser.add_argument("--output", default="runs/example_cifar10")
args = parser.parse_args()
os.makedirs(args.output, exist_ok=True)

# 1. Data. Images are read once, kept as uint8 in memory, and split per
#    class: the last 10% of every class folder is the validation split.
splits = data.load_image_folder(
    args.data_dir or data.sample_data_dir(), image_size=(32, 32), validation_fraction=0.1
)
print(f"{splits.num_train} training / {splits.num_validation} validation images, "
      f"classes: {splits.class_names}")

# 2. Augmentation, training split only: the seed recipe's random resized crop,
#    colour jitter, horizontal flip and rotation (Keras preprocessing layers,
#    run inside tf.data), then MixUp on one-hot labels. Both pipelines end with
#    `normalize_images`, the ImageNet normalisation the model expects.
augmentation = augment.build_augmentation(
    (32, 32), crop_scale=(0.6, 1.0), rotation_degrees=20, color_jitter=0.2
)
train_ds = data.train_pipeline(
    splits.train, splits.num_classes, args.batch_size,
    augmentation=augmentation, mixup_alpha=0.2,
)
val_ds = data.eval_pipeline(splits.validation, splits.num_classes, args.batch_size)

# 3. The model: the CIFAR-size Wave-ViT (stem stride 2), logits output,
#    stochastic depth 0.1.
model = keras_wavevit.WaveViTTiny(num_classes=splits.num_classes, drop_path_rate=0.1)

# 4. AdamW with a linear warm-up (1 epoch) and cosine decay, label smoothing.
steps_per_epoch = splits.num_train // args.batch_size
schedule = keras.optimizers.schedules.CosineDecay(
    initial_learning_rate=0.0,
    warmup_target=1e-3,
    warmup_steps=steps_per_epoch,
    decay_steps=max(1, steps_per_epoch * (args.epochs - 1)),
    alpha=0.01,
)
optimizer = keras.optimizers.AdamW(learning_rate=schedule, weight_decay=0.05)
optimizer.exclude_from_weight_decay(var_names=["bias", "gamma", "beta"])
model.compile(
    optimizer=optimizer,
    loss=keras.losses.CategoricalCrossentropy(from_logits=True, label_smoothing=0.1),
    metrics=[keras.metrics.CategoricalAccuracy(name="accuracy"),
             keras.metrics.TopKCategoricalAccuracy(5, name="top5_accuracy")],
)

# 5. Train, keeping the best checkpoint and a CSV log. BackupAndRestore makes
#    an interrupted run continue where it stopped when started again.
history = model.fit(
    train_ds,
    validation_data=val_ds,
    epochs=args.epochs,
    shuffle=False,  # train_ds already reshuffles every epoch
    callbacks=[
        keras.callbacks.ModelCheckpoint(os.path.join(args.output, "best.keras"),
                                        monitor="val_accuracy", mode="max",
                                        save_best_only=True),
        keras.callbacks.BackupAndRestore(os.path.join(args.output, "backup")),
        keras.callbacks.CSVLogger(os.path.join(args.output, "log.csv")),
    ],
)

# 6. Learning curves and a prediction grid.
plots.plot_learning_curves(history.history, args.output)
images, labels = next(iter(splits.validation.shuffle(1000, seed=0).batch(16)))
predicted = np.argmax(model.predict(keras_wavevit.normalize_images(images), verbose=0), axis=-1)
plots.plot_prediction_grid(images.numpy(), labels.numpy(), predicted, splits.class_names,
                           os.path.join(args.output, "predictions.png"))

# 7. Export a SavedModel that takes uint8 images of any size, and ask it.
version_dir = export_saved_model(model, os.path.join(args.output, "saved_model"),
                                 class_names=splits.class_names, overwrite=True)
serve = tf.saved_model.load(version_dir).signatures["serving_default"]
answer = serve(images=tf.cast(images[:1], tf.uint8))
print(f"SavedModel says: {answer['classes'][0].numpy().decode()} "
      f"(true: {splits.class_names[int(labels[0])]})")
