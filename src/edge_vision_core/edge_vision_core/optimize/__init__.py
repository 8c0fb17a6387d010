"""Model optimization: quantization, pruning, input-size variants, hardware benchmarks."""
