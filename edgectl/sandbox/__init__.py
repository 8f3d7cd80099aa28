"""A small edge estate on loopback: an origin site and caching edge nodes, for trials and tests."""
