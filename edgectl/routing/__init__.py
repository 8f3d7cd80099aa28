"""Geographic routing: rules from sources of traffic to nodes, locations, and where a location goes."""
