"""Model configurations shared by the tests."""

# A Wave-ViT small enough to train in seconds on a CPU: stem stride 2, so a
# 32x32 image gives stage maps of 16, 8, 4 and 2 pixels.
MICRO_ARCHITECTURE = dict(
    embed_dims=(8, 16, 32, 32),
    num_heads=(1, 1, 2, 2),
    mlp_ratios=(2, 2, 2, 2),
    depths=(1, 1, 1, 1),
    sr_ratios=(2, 1, 1, 1),
    stem_hidden_dim=8,
    stem_stride=2,
)

# The same architecture as a 3-class classifier of 32x32 images.
MICRO_CLASSIFIER = dict(MICRO_ARCHITECTURE, input_shape=(32, 32, 3), num_classes=3)
