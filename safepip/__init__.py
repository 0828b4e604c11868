"""safepip: install only Python wheels whose sha256 is on a GPG-signed list."""

__version__ = "0.1.0"
