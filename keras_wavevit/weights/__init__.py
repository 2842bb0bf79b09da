"""Reading checkpoints and mapping the official Wave-ViT weights."""
