"""The networks: the U-Net (embeddings and class logits), MSD networks, and prompt attention."""
