"""`nodes check` against real health endpoints on loopback, good and bad, and the up/down hysteresis."""

import json
import os
import signal
import subprocess
import sys
import time

from edgectl.state import open_state
from tests.fakes.health_servers import closed_port
from tests.history import history


def add(cli, name, port, *extra):
    run = cli("nodes", "add", name, "--endpoint", f"http://127.0.0.1:{port}", *extra)
    assert run.exit_code == 0, run.stderr


def check(cli, *args):
    run = cli("nodes", "check", *args, "-o", "json")
    assert run.exit_code in (0, 1), run.stderr
    return run.exit_code, {r["node"]: r for r in run.json()}


def test_every_kind_of_endpoint(cli, fleet, state_path):
    ports = {
        "healthy": fleet.add("healthy"),
        "nonjson": fleet.add("nonjson"),
        "huge": fleet.add("huge"),
        "slow": fleet.add("slow", delay=3.0),
        "error": fleet.add("error"),
        "sick": fleet.add("sick"),
        "blackhole": fleet.add("blackhole"),
        "closed": closed_port(),
    }
    for name, port in ports.items():
        add(cli, name, port)
    code, results = check(cli, "--all", "--timeout", "1s", "--fail-after", "1")
    assert code == 1
    assert {n for n, r in results.items() if r["result"] == "up"} == {"healthy", "nonjson", "huge"}
    assert results["healthy"]["http_status"] == 200 and results["healthy"]["latency_ms"] > 0
    assert results["error"]["error"] == "HTTP 500"
    assert results["sick"]["error"] == "reports status 'fail'"
    assert results["slow"]["error"] == "timed out after 1s"
    assert results["blackhole"]["error"] == "timed out after 1s"
    assert results["closed"]["error"] == "connection refused"
    assert {n for n, r in results.items() if r["status"] == "failed"} == {"slow", "error", "sick", "blackhole", "closed"}
    healthy = cli("nodes", "show", "healthy", "-o", "json").json()
    assert healthy["health_metrics"]["cpu_percent"] == 12.5 and healthy["last_check_ok"] is True
    state = open_state(state_path)
    metrics = {(r["metric"], r["unit"], r["source"]) for r in history(state, node="healthy")}
    down = [(r["metric"], r["value"]) for r in history(state, node="closed")]
    state.close()
    assert {("latency", "ms", "probe"), ("up", "bool", "probe"), ("cpu", "percent", "probe"),
            ("network", "mbps", "probe")} <= metrics
    assert down == [("up", 0.0)]


def test_hysteresis_fail_after_and_recover_after(cli, fleet):
    port = fleet.add("error")
    add(cli, "edge-1", port)
    opts = ("edge-1", "--fail-after", "3", "--recover-after", "2", "--timeout", "2s")
    for expected_streak in (1, 2):
        code, results = check(cli, *opts)
        assert code == 0 and results["edge-1"]["status"] == "active"
        assert results["edge-1"]["fail_streak"] == expected_streak
    code, results = check(cli, *opts)
    assert code == 1 and results["edge-1"]["status"] == "failed" and results["edge-1"]["changed"]
    fleet.set(port, "healthy")
    code, results = check(cli, *opts)
    assert code == 1 and results["edge-1"]["status"] == "failed" and results["edge-1"]["result"] == "up"
    code, results = check(cli, *opts)
    assert code == 0 and results["edge-1"]["status"] == "active"
    events = [e for e in cli("nodes", "events", "edge-1", "-o", "json").json() if e["kind"] == "health"]
    assert [(e["old_status"], e["new_status"]) for e in events] == [("active", "failed"), ("failed", "active")]
    assert "3 failed probes in a row: HTTP 500" == events[0]["reason"]


def test_flapping_node_never_reaches_the_threshold(cli, fleet):
    add(cli, "flappy", fleet.add("flapping"))
    for _ in range(6):
        code, results = check(cli, "flappy", "--fail-after", "2")
        assert code == 0 and results["flappy"]["status"] == "active"


def test_held_statuses_are_probed_but_kept(cli, fleet):
    for name in ("drained", "maint", "off"):
        add(cli, name, closed_port())
    cli("nodes", "drain", "drained")
    cli("nodes", "maintenance", "maint", "on")
    cli("nodes", "update", "off", "--status", "inactive")
    code, results = check(cli, "--all", "--fail-after", "1")
    assert code == 0
    assert {n: (r["result"], r["status"]) for n, r in results.items()} == {
        "drained": ("down", "draining"), "maint": ("down", "maintenance"), "off": ("down", "inactive")}


def test_selection_and_bad_input(cli, fleet):
    add(cli, "a-1", fleet.add("healthy"), "--label", "pool=a", "--region", "eu-west")
    add(cli, "b-1", fleet.add("healthy"), "--region", "us-east")
    assert set(check(cli, "--label", "pool=a")[1]) == {"a-1"}
    assert set(check(cli, "--region", "us-east")[1]) == {"b-1"}
    assert cli("nodes", "check").exit_code == 2
    assert cli("nodes", "check", "a-1", "--all").exit_code == 2
    assert cli("nodes", "check", "a-1", "ghost").exit_code == 2
    assert cli("nodes", "check", "--all", "--timeout", "0").exit_code == 2
    assert cli("nodes", "check", "--all", "--timeout", "fast").exit_code == 2
    assert cli("nodes", "check", "--all", "--concurrency", "0").exit_code == 2


def test_health_path_default_and_per_node(cli, fleet, isolated):
    port = fleet.add("healthy")
    add(cli, "custom", port, "--health-path", "/status")
    check(cli, "custom")
    assert fleet.endpoints[port].last_headers  # the request arrived
    (isolated / "work" / "edgectl.toml").write_text('[nodes]\nhealth_path = "/ready"\n')
    add(cli, "default", port)
    assert cli("nodes", "check", "default").exit_code == 0


def test_watch_repeats_until_interrupted(isolated, fleet):
    env = {k: v for k, v in os.environ.items() if not k.startswith("EDGECTL_")}
    env["EDGECTL_STATE"] = str(isolated / "w.db")
    port = fleet.add("healthy")
    subprocess.run([sys.executable, "-m", "edgectl", "nodes", "add", "w-1", "--endpoint", f"http://127.0.0.1:{port}"],
                   env=env, check=True, capture_output=True)
    proc = subprocess.Popen([sys.executable, "-m", "edgectl", "nodes", "check", "--all", "--watch", "--interval", "100ms",
                             "-o", "jsonl"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines = []
    deadline = time.monotonic() + 30
    while len(lines) < 3 and time.monotonic() < deadline:
        line = proc.stdout.readline()
        if line:
            lines.append(json.loads(line))
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert len(lines) >= 3 and all(l["node"] == "w-1" and l["result"] == "up" for l in lines)
    assert proc.returncode == 130
    assert "interrupted" in err and "Traceback" not in err


def test_a_token_with_a_line_break_never_leaks(cli, fleet, isolated, state_path):
    secret = isolated / "token"
    secret.write_text("leaky-secret-123\nsecond-line\n")
    add(cli, "t1", fleet.add("healthy"), "--token", f"file:{secret}")
    run = cli("nodes", "check", "t1", "-o", "json")
    assert run.exit_code == 2 and "line break" in run.stderr
    assert "leaky-secret" not in run.stdout + run.stderr
    assert b"leaky-secret" not in b"".join(p.read_bytes() for p in state_path.parent.glob("state.db*"))


def test_undrain_after_failure_leaves_recovery_to_the_probes(cli, fleet):
    port = fleet.add("error")
    add(cli, "u1", port)
    check(cli, "u1", "--fail-after", "1")
    cli("nodes", "drain", "u1")
    assert cli("nodes", "undrain", "u1", "-o", "json").json()["status"] == "failed"
    fleet.set(port, "healthy")
    check(cli, "u1", "--recover-after", "1")
    assert cli("nodes", "show", "u1", "-o", "json").json()["status"] == "active"


def _self_signed(tmp_path):
    import datetime
    import ipaddress
    import ssl

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
            .sign(key, hashes.SHA256()))
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)
    return context, cert_file


def test_https_nodes_verify_certificates(fleet, isolated):
    context, cert_file = _self_signed(isolated)
    port = fleet.add("healthy", tls=context)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EDGECTL_", "SSL_CERT"))}
    env["EDGECTL_STATE"] = str(isolated / "tls.db")

    def edgectl(*args, **extra_env):
        done = subprocess.run([sys.executable, "-m", "edgectl", *args], env={**env, **extra_env},
                              capture_output=True, text=True, timeout=60)
        return done.returncode, done.stdout, done.stderr

    assert edgectl("nodes", "add", "tls-1", "--endpoint", f"https://127.0.0.1:{port}")[0] == 0
    _, out, _ = edgectl("nodes", "check", "tls-1", "-o", "json")
    result = json.loads(out)[0]
    assert result["result"] == "down" and result["error"].startswith("TLS error: CERTIFICATE_VERIFY_FAILED")
    # trusted through the standard variable, the same node is up over TLS
    code, out, err = edgectl("nodes", "check", "tls-1", "-o", "json", SSL_CERT_FILE=str(cert_file))
    assert code == 0, err
    assert json.loads(out)[0]["result"] == "up" and json.loads(out)[0]["http_status"] == 200
