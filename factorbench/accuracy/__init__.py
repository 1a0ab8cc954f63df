"""Test matrices, precisions, metrics and flop counts."""
