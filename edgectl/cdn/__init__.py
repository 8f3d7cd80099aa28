"""CDN purges: configured providers, purge plans, the purge journal and its executor."""
