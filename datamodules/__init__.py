"""WebDataset shards of DiSCo modalities: preprocessing (`prepare`), the shard format (`schema`), crash-safe
writing (`sink`), and the DataModules that read them (`shards`, `sketch_clips`).

May import disco_train's config, modalities, codec and decoder (the sender, the receiver, the frozen encoders)
and lightning (the DataModules); never disco_train.train: data does not know the training system.
"""
