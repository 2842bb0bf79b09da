"""`.keras` files saved by the 0.1.0 flat layout still load and compute the same.

tests/fixtures/micro_v0_1_0.keras is a micro Wave-ViT classifier saved by
version 0.1.0 (flat modules, Keras' own LayerNormalization for the stage
norms); micro_v0_1_0_io.npz holds images and the logits that version gave.
"""

import os

import keras
import numpy as np
import pytest

import keras_wavevit
from keras_wavevit.layers import LayerNormalization

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures")


@pytest.fixture(scope="module")
def legacy():
    model = keras.saving.load_model(os.path.join(FIXTURES, "micro_v0_1_0.keras"))
    io = np.load(os.path.join(FIXTURES, "micro_v0_1_0_io.npz"))
    return model, io["images"], io["logits"]


def test_old_file_loads_and_reproduces_its_logits(legacy):
    model, images, logits = legacy
    np.testing.assert_allclose(np.asarray(model(images)), logits, rtol=0, atol=1e-6)
    assert model.get_layer("block1_0").attn.__class__ is keras_wavevit.layers.WaveAttention
    assert isinstance(model.get_layer("block1_0").mlp.dwconv, keras_wavevit.layers.DepthwiseConvGELU)


def test_old_file_weights_load_into_a_model_built_today(legacy):
    model, images, logits = legacy
    config = {layer.name: layer.get_config() for layer in model.layers}
    rebuilt = keras_wavevit.WaveViT(
        embed_dims=(8, 16, 32, 32), num_heads=(1, 1, 2, 2), mlp_ratios=(2, 2, 2, 2),
        depths=(1, 1, 1, 1), sr_ratios=(2, 1, 1, 1), stem_hidden_dim=8, stem_stride=2,
        input_shape=model.input_shape[1:], num_classes=config["head"]["num_classes"],
        token_label=config["head"]["token_label"],
    )
    assert [w.path for w in rebuilt.weights] == [w.path for w in model.weights]
    rebuilt.set_weights(model.get_weights())
    # Today's stage norms are the fused layer: same formula, float32 rounding.
    assert isinstance(rebuilt.get_layer("norm4"), LayerNormalization)
    np.testing.assert_allclose(np.asarray(rebuilt(images)), logits, rtol=0, atol=1e-5)


def test_old_file_resaves_and_loads_again(legacy, tmp_path):
    model, images, logits = legacy
    path = os.path.join(tmp_path, "resaved.keras")
    model.save(path)
    reloaded = keras.saving.load_model(path)
    np.testing.assert_array_equal(np.asarray(reloaded(images)), np.asarray(model(images)))
    np.testing.assert_allclose(np.asarray(reloaded(images)), logits, rtol=0, atol=1e-6)
