"""Packaging for keras-wavevit."""

from setuptools import find_packages, setup

setup(
    name="keras-wavevit",
    version="0.1.0",
    description="Wave-ViT (ECCV 2022) for Keras 3 / TensorFlow: wavelet layers, "
    "models, official-weight converter, training recipe and SavedModel export.",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    packages=find_packages(include=["keras_wavevit", "keras_wavevit.*"]),
    include_package_data=True,
    package_data={
        "keras_wavevit": [
            "sample_data/*", "sample_data/*/*/*.jpg", "data/*.json",
            "recipes/named_recipes/*.json",
        ]
    },
    python_requires=">=3.10",
    install_requires=[
        "tensorflow>=2.16",
        # 3.9: the augmentation layers the recipe uses (Pipeline, MixUp,
        # CutMix, RandomColorJitter) and keras.ops.custom_gradient.
        "keras>=3.9",
        "tensorflow-datasets",
        "numpy",
    ],
    extras_require={
        "cuda": ["tensorflow[and-cuda]>=2.16"],
        # Reading official PyTorch checkpoints (.pth) and .safetensors files.
        "convert": ["torch", "safetensors"],
        # Only .safetensors / .npz checkpoints: no torch needed.
        "safetensors": ["safetensors"],
        # The other Keras backends the model core runs on (KERAS_BACKEND=jax
        # or torch); the tests cover every backend that is installed.
        "backends": ["jax", "torch"],
        # matplotlib draws the learning curves, prediction grid and figures.
        "plots": ["matplotlib"],
        # `keras-wavevit export --format onnx|openvino|litert` and their
        # runtimes (Keras' model.export converts through these packages).
        "onnx": ["tf2onnx", "onnxruntime"],
        "openvino": ["openvino"],
        "litert": ["ai-edge-litert"],
        # WaveViTBackbone / WaveViTImageClassifier as keras-hub models.
        "hub": ["keras-hub"],
        # tensorflow-serving-api: the gRPC PredictRequest protos that the
        # README's client snippet uses, run by the tests against an export.
        # pywavelets: the independent reference the Haar layers are tested
        # against (Wave-ViT uses only Haar, computed in closed form).
        # pytest-xdist: the suite runs on every core (most slow tests wait on
        # child processes). The export runtimes and keras-hub are here so
        # their parity tests run rather than skip.
        "dev": [
            "pytest", "pytest-xdist", "hypothesis", "matplotlib", "pywavelets",
            "tensorflow-serving-api", "tf2onnx", "onnxruntime", "openvino",
            "ai-edge-litert", "keras-hub",
        ],
    },
    entry_points={"console_scripts": ["keras-wavevit=keras_wavevit.cli:main"]},
    classifiers=[
        "License :: OSI Approved :: Apache Software License",
        "Programming Language :: Python :: 3",
        "Topic :: Scientific/Engineering :: Artificial Intelligence",
    ],
)
