"""edgectl's plugin for self-run Varnish caches: the `varnish` provider kind and the `edgectl varnish` commands."""

EDGECTL_PLUGIN_API = "1.0"
