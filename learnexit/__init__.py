"""learnexit: make an LMS vendor's offboarding promises executable and provable."""

__version__ = "0.1.0"
