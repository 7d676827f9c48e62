"""The synthetic corpus: generated multimodal conversations with planted, partly reliable cues."""
