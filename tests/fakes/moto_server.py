"""moto in server mode on loopback, in a background thread, for tests that talk to AWS APIs.

    server = MotoServer().start()   # server.url -> "http://127.0.0.1:PORT"
    ...
    server.stop()

Independent of pytest so bench scripts and the demo can use it too. `reset()` drops every
resource moto holds (all services, all accounts) without restarting the thread.
"""

from __future__ import annotations

import urllib.request


class MotoServer:
    def __init__(self, host: str = "127.0.0.1", quiet: bool = True):
        self.host = host
        self.quiet = quiet
        self.url = ""
        self._server = None

    def start(self) -> "MotoServer":
        # Imported here so importing tests.fakes does not pull in moto (slow) for tests that never use it.
        import logging

        from moto.server import ThreadedMotoServer

        if self.quiet:  # werkzeug logs every request to stderr otherwise
            logging.getLogger("werkzeug").setLevel(logging.WARNING)
        # Port 0 lets the kernel pick a free port at bind time: no window for another process to take it.
        self._server = ThreadedMotoServer(ip_address=self.host, port=0, verbose=False)
        self._server.start()
        host, port = self._server.get_host_and_port()
        self.url = f"http://{host}:{port}"
        return self

    def reset(self) -> None:
        request = urllib.request.Request(f"{self.url}/moto-api/reset", method="POST")
        with urllib.request.urlopen(request, timeout=5) as response:
            response.read()

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None

    def __enter__(self) -> "MotoServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


TEST_KEYS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing", "region_name": "us-east-1"}

# The smallest DistributionConfig moto accepts: one origin and a default behaviour pointing at it.
DISTRIBUTION_CONFIG = {
    "Comment": "edgectl tests",
    "Enabled": True,
    "Aliases": {"Quantity": 1, "Items": ["www.example.com"]},
    "Origins": {"Quantity": 1, "Items": [{
        "Id": "origin", "DomainName": "origin.example.com",
        "CustomOriginConfig": {"HTTPPort": 80, "HTTPSPort": 443, "OriginProtocolPolicy": "https-only"},
    }]},
    "DefaultCacheBehavior": {"TargetOriginId": "origin", "ViewerProtocolPolicy": "redirect-to-https",
                             "CachePolicyId": "658327ea-f89d-4fab-a63d-7e88639e58f6"},  # Managed-CachingOptimized
}
