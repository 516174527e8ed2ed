"""Whether the Hugging Face hub can be reached from here, asked once, in seconds, before a hub
id is tried. Offline, ``huggingface_hub`` retries its connection (minutes, on a network that
drops packets rather than refusing them) and ends in chained tracebacks; a judge path that is
neither on disk nor reachable on the hub is better told in one line at once.

    reason = unreachable()   # None, or why not: "HF_HUB_OFFLINE is set", "huggingface.co:443: ..."
"""

from __future__ import annotations

import os
import socket
import threading
import urllib.request
from urllib.parse import urlparse

# Long enough for a slow but working network to open a TCP connection, short enough that a
# wrong path fails well within five seconds.
TIMEOUT_S = 2.0
TRUE = ("1", "on", "yes", "true")  # as huggingface_hub reads HF_HUB_OFFLINE


def endpoint() -> str:
    """The hub's address: ``HF_ENDPOINT`` (a mirror), or huggingface.co."""
    return os.environ.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/")


def unreachable(timeout: float = TIMEOUT_S) -> str | None:
    """Why the hub cannot be reached, or None when it can: ``HF_HUB_OFFLINE`` set, or no TCP
    connection to its endpoint (through the proxy the environment names, if any) within
    ``timeout`` seconds, name lookup included (which a socket timeout does not bound)."""
    if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in TRUE:
        return "HF_HUB_OFFLINE is set"
    url = urlparse(endpoint())
    host, port = url.hostname or "", url.port or (443 if url.scheme == "https" else 80)
    proxy = urllib.request.getproxies().get(url.scheme)
    if proxy and not urllib.request.proxy_bypass(host):
        proxy_url = urlparse(proxy if "://" in proxy else f"http://{proxy}")
        host, port = proxy_url.hostname or "", proxy_url.port or 8080
    outcome: list[str | None] = []

    def connect() -> None:
        try:
            socket.create_connection((host, port), timeout=timeout).close()
            outcome.append(None)
        except OSError as e:
            outcome.append(e.strerror or str(e) or type(e).__name__)

    # A daemon thread: a name lookup that hangs is left behind, not waited for at exit.
    attempt = threading.Thread(target=connect, daemon=True)
    attempt.start()
    attempt.join(timeout)
    if not outcome:
        return f"{host}:{port} did not answer within {timeout:g} s"
    return None if outcome[0] is None else f"{host}:{port}: {outcome[0]}"
