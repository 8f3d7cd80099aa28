"""Geographic routing: rules from sources of traffic to nodes, and where a location goes."""
