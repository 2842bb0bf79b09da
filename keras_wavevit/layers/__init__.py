"""Wave-ViT Keras layers: wavelets, attention, blocks, head, normalisation."""
