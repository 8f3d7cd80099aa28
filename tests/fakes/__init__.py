"""Local servers that tests and benchmarks talk to over real sockets on 127.0.0.1."""
