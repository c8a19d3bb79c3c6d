"""The error one unreadable file raises, shared by the decoders of each format."""


class UnreadableImage(Exception):
    """One file could not be read; ``reason`` says why in a few words."""

    def __init__(self, reason):
        super().__init__(reason)
        self.reason = reason
