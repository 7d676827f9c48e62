"""Cross-modal attention framework (BLANK-2340/Emotional-analysis-neural-net)."""
