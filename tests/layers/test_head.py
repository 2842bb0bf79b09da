"""The head: MeanClassToken, ClassBlock, TokenLabelHead, ClassTokenPool."""

import numpy as np
import pytest

from keras_wavevit.layers import ClassBlock, ClassTokenPool, MeanClassToken, TokenLabelHead
from tests.layer_checks import (  # noqa: F401 (fixture)
    created_weights,
    dense_reference,
    layer_contract_test,
    raises_before_weights,
    randomize_weights,
)

LAYER_CASES = [
    (ClassBlock, dict(dim=16, num_heads=2, mlp_ratio=2), (2, 9, 16), (2, 9, 16)),
    (MeanClassToken, {}, (2, 3, 4, 8), (2, 13, 8)),
    (TokenLabelHead, dict(num_classes=5, token_label=True), (2, 9, 16), (2, 5)),
    (TokenLabelHead, dict(num_classes=5), (2, 9, 16), (2, 5)),
]


test_layer_contract = layer_contract_test(LAYER_CASES)


def test_class_block_updates_only_the_class_token():
    block = ClassBlock(dim=8, num_heads=2, mlp_ratio=2)
    x = np.random.default_rng(5).normal(size=(2, 5, 8)).astype("float32")
    out = np.asarray(block(x))
    np.testing.assert_array_equal(out[:, 1:], x[:, 1:])
    assert np.abs(out[:, 0] - x[:, 0]).max() > 1e-3


def test_token_label_head_adds_half_the_max_aux_logit():
    head = TokenLabelHead(num_classes=3, token_label=True)
    x = np.random.default_rng(6).normal(size=(2, 5, 4)).astype("float32")
    head(x)
    randomize_weights(head, 16)
    out = np.asarray(head(x))
    expected = dense_reference(head.head, x[:, 0]) + 0.5 * dense_reference(head.aux_head, x[:, 1:]).max(axis=1)
    np.testing.assert_allclose(out, expected, atol=1e-5)


def test_mean_class_token_is_the_token_mean():
    x = np.random.default_rng(7).normal(size=(2, 3, 2, 4)).astype("float32")
    out = np.asarray(MeanClassToken()(x))
    np.testing.assert_allclose(out[:, 0], x.reshape(2, 6, 4).mean(axis=1), atol=1e-6)
    np.testing.assert_array_equal(out[:, 1:], x.reshape(2, 6, 4))


def test_class_token_pool_takes_the_first_token():
    x = np.random.default_rng(8).normal(size=(2, 5, 4)).astype("float32")
    np.testing.assert_array_equal(np.asarray(ClassTokenPool()(x)), x[:, 0])
    assert ClassTokenPool().compute_output_shape((None, None, 4)) == (None, 4)


@pytest.mark.parametrize(
    "build, message",
    [
        (lambda: ClassBlock(dim=16, num_heads=3, mlp_ratio=4), r"received dim=16, num_heads=3"),
        (lambda: ClassBlock(dim=16, num_heads=2, mlp_ratio=-1), r"mlp_ratio must be a positive number; received mlp_ratio=-1"),
        (lambda: TokenLabelHead(num_classes=0), r"num_classes must be a positive integer; received num_classes=0"),
        (lambda: TokenLabelHead(num_classes=2.0), r"num_classes must be a positive integer; received num_classes=2.0"),
    ],
)
def test_constructors_reject_before_creating_weights(created_weights, build, message):  # noqa: F811
    raises_before_weights(created_weights, message, build)


@pytest.mark.parametrize(
    "layer, shape, message",
    [
        (lambda: ClassBlock(dim=16, num_heads=2, mlp_ratio=2), (1, 4, 4, 16), r"ClassBlock expects tokens \(batch, 1 \+ tokens, 16\); received shape \(1, 4, 4, 16\)"),
        (lambda: TokenLabelHead(num_classes=3), (1, 16), r"TokenLabelHead expects tokens \(batch, 1 \+ tokens, channels\); received shape \(1, 16\)"),
        (lambda: ClassTokenPool(), (2, 4, 4, 8), r"ClassTokenPool expects tokens \(batch, 1 \+ tokens, channels\); received shape \(2, 4, 4, 8\)"),
        (lambda: MeanClassToken(), (2, 17, 8), r"MeanClassToken expects a feature map \(batch, height, width, channels\); received shape \(2, 17, 8\)"),
    ],
)
def test_layers_reject_wrong_inputs_at_build(layer, shape, message):
    with pytest.raises(ValueError, match=message):
        layer()(np.zeros(shape, "float32"))
