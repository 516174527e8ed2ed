"""Whether the Hugging Face hub can be reached from here, asked once, in seconds, before a hub
id is tried. Offline, ``huggingface_hub`` retries its connection (minutes, on a network that
drops packets rather than refusing them) and ends in chained tracebacks; a judge path that is
neither on disk nor reachable on the hub is better told in one line at once. Nothing here
imports torch: the commands ask ``missing_judge`` before loading the model code (seconds).

    reason = unreachable()            # None, or why not: "HF_HUB_OFFLINE is set", "huggingface.co:443: ..."
    problem = missing_judge(path)     # None, or the one line to exit with
"""

from __future__ import annotations

import os
import re
import socket
import threading
import urllib.request
from pathlib import Path
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


def is_hub_id(text: str) -> bool:
    """``owner/name`` as the hub spells it, and no local path of that name, nor a local folder
    ``owner``: ``runs/judge`` missing beside a ``runs/`` folder is a local path mistyped, and
    trying it on the hub would only wait for the network (minutes, offline) to say so."""
    path = Path(text)
    return not path.exists() and not path.parent.is_dir() and not text.endswith(".ckpt") and bool(
        re.fullmatch(r"[A-Za-z0-9][\w.-]*/[\w.-]+", text))


def cached(repo_id: str) -> bool:
    """Whether a copy of hub model ``repo_id`` is in the local hub cache (no network asked)."""
    from huggingface_hub import snapshot_download

    try:
        snapshot_download(repo_id, local_files_only=True)
        return True
    except Exception:  # not cached (or a cache entry cut short): the same here
        return False


def not_found(repo_id: str, reason: str) -> str:
    return f"{repo_id} does not exist locally, and the hub is not reachable to look for it there ({reason})"


def missing_judge(path) -> str | None:
    """The line to refuse a judge path with when it is a hub id that is neither on disk, nor in
    the hub cache, nor on a hub that can be reached; None otherwise (the loaders decide)."""
    if not is_hub_id(str(path)):
        return None
    reason = unreachable()
    return not_found(str(path), reason) if reason is not None and not cached(str(path)) else None
