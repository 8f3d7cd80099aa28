"""Geographic routing: where clients are, which rules match them and which node serves them."""
