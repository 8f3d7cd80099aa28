"""Cache warming: URL sources (sitemaps, files, purges), the warm engine, cache status and entries."""
