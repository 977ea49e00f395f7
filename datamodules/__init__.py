"""WebDataset shards of DiSCo modalities: preprocessing and DataModules."""
