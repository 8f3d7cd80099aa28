"""The VCL files edgectl's varnish provider purges through, installed with the package (see edgectl.vcl)."""
