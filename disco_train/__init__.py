"""disco-train: a Lightning trainer for DiSCo semantic video codecs."""
