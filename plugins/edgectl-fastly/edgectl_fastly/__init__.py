"""Fastly for edgectl: the `fastly` provider kind (purges and historical stats) over Fastly's API."""

EDGECTL_PLUGIN_API = "1.0"
