"""The error family of bytes that do not decode. Every receiver path raises a subclass (ContainerError,
StreamError, VideoError, BitstreamError, ...) and every command reports one as a one-line error.

`ConfigError` is not here: it names a dotted configuration key and stays with the configuration
(`disco_train.config.base`).
"""


class DecodeError(ValueError):
    """Bytes that do not decode: a `.disco` file, a bitstream or a shard sample that is malformed, truncated,
    corrupt, or declares more than the decoder's limits (`DecodeLimits`). Every receiver path raises this family
    (ContainerError, VideoError, BitstreamError, ...), within time and memory bounded by the limits."""


class VideoError(DecodeError):
    """A video file or bitstream could not be read or written."""


class TooLarge(VideoError):
    """A video declares or holds more frames × pixels than the reader's bound."""
