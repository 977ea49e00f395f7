"""disco-train: PyTorch Lightning framework for training DiSCo semantic video codecs."""
