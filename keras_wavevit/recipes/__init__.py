"""The training wing: data, augmentation, training, evaluation, figures.

TensorFlow-specific; `import keras_wavevit` never imports it.
"""
