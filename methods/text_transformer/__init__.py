"""Text transformer baseline: a fine-tuned pre-trained encoder with a linear head."""
