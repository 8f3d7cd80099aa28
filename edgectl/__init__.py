"""edgectl: the command line for an edge estate and the CDNs in front of it."""

__version__ = "0.1.0"
