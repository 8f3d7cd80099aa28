"""Analytics: the metrics history, its rollups, and the percentiles read from them."""
