"""Inference: backends per accelerator, model adapters/decoders, letterbox, NMS, model manifests."""
