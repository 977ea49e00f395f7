"""Neural codecs used by disco-train (DCVC-RT for the sketch / structure stream)."""
