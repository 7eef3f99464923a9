"""Separate network namespaces for the three app servers of tests/ops/three_servers.py.

Each server gets a network stack of its own: a namespace joined by a veth pair to a bridge the harness makes,
so the three listen on the same port, each at its own address, and reach PgBouncer and Redis at the bridge's
address as they would reach other machines. Made with `ip` (iproute2) and removed at the end; names and
addresses carry a random tag, so two harnesses on one machine (CI and a developer's run) never meet.
Making namespaces needs root (CAP_NET_ADMIN); where that fails, the harness uses ports of 127.0.0.1 instead.
"""
from __future__ import annotations

import os
import secrets
import shutil
import subprocess

SBIN = ("/usr/sbin", "/usr/local/sbin", "/sbin", "/bin", "/usr/bin")


def _ip() -> str | None:
    return shutil.which("ip") or shutil.which("ip", path=os.pathsep.join(SBIN))


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([_ip() or "ip", *args], capture_output=True, text=True, timeout=10)


def unavailable() -> str | None:
    """Why namespaces cannot be made here (None when they can): tried once, with a namespace made and removed."""
    if os.environ.get("THREE_SERVERS_NETNS") == "0":
        return "THREE_SERVERS_NETNS=0"
    if _ip() is None:
        return "no ip (iproute2)"
    if os.geteuid() != 0:
        return "not root"
    probe = f"voucher-probe-{secrets.token_hex(3)}"
    made = _run("netns", "add", probe)
    if made.returncode:
        return f"ip netns add failed: {made.stderr.strip()}"
    _run("netns", "delete", probe)
    return None


class Namespaces:
    """`count` namespaces on one bridge of 10.A.B.0/24: the bridge (the host side) at .1, namespace i at .(11+i)."""

    def __init__(self, count: int) -> None:
        tag = secrets.token_hex(2)
        self.bridge = f"vbr{tag}"
        self.names = [f"voucher-{tag}-{i + 1}" for i in range(count)]
        self._links = [f"vh{tag}{i + 1}" for i in range(count)]  # at most 15 characters, the kernel's limit
        self._prefix = f"10.{secrets.choice(range(100, 250))}.{secrets.randbelow(256)}"
        self.host_ip = f"{self._prefix}.1"

    def address(self, index: int) -> str:
        return f"{self._prefix}.{11 + index}"

    def exec_prefix(self, index: int) -> list[str]:
        """A command run after this is run in namespace `index` (ip netns exec replaces itself with it)."""
        return [_ip() or "ip", "netns", "exec", self.names[index]]

    def up(self) -> None:
        try:
            self._check("link", "add", self.bridge, "type", "bridge")
            self._check("addr", "add", f"{self.host_ip}/24", "dev", self.bridge)
            self._check("link", "set", self.bridge, "up")
            for index, (name, link) in enumerate(zip(self.names, self._links)):
                self._check("netns", "add", name)
                self._check("link", "add", link, "type", "veth", "peer", "name", "eth0", "netns", name)
                self._check("link", "set", link, "master", self.bridge)
                self._check("link", "set", link, "up")
                self._check("-n", name, "addr", "add", f"{self.address(index)}/24", "dev", "eth0")
                self._check("-n", name, "link", "set", "eth0", "up")
                self._check("-n", name, "link", "set", "lo", "up")
        except Exception:
            self.down()
            raise

    def down(self) -> None:
        """Remove what up() made (a namespace takes its end of the veth pair with it, and the pair goes)."""
        for name in self.names:
            _run("netns", "delete", name)
        _run("link", "delete", self.bridge)

    @staticmethod
    def _check(*args: str) -> None:
        done = _run(*args)
        if done.returncode:
            raise RuntimeError(f"ip {' '.join(args)}: {done.stderr.strip()}")
