"""Several "hosts" on one machine for multi-process tests: Linux network namespaces or loopback.

`hosts(["pg", "web", "w1"], isolate=True)` yields `Hosts`: each name is a network namespace of
its own with one address in 10.213.0.0/24, all joined by a bridge that lives in one more
namespace, so the subnet exists nowhere but in namespaces this module made (the machine's own
interfaces and routes are never touched). `command(host, argv)` runs a program on a host,
`call(host, fn)` runs Python with that host's network (its sockets are made in a thread that
entered the namespace), `address(host)` is where others reach it.

Namespaces need root and `ip` (iproute2). When they cannot be made, or with `isolate=False`,
every host is this machine's 127.0.0.1 and `isolated` is False: the same scenario runs with its
processes on loopback, and `note` says why. Namespaces are named `fyhosts<pid>-<host>`; leftovers
of a run whose process is gone (a crashed or killed test) are removed before new ones are made,
and a run removes its own in a `finally`, with every process still inside them.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass, field
from functools import partial
from typing import ParamSpec, TypeVar

__all__ = ["SUBNET", "Hosts", "hosts"]

SUBNET = "10.213.0"
"""The first three octets of the private /24 the namespaced hosts share (hosts count up from
`.2`; the bridge has no address)."""

_PREFIX = "fyhosts"
_CLONE_NEWNET = 0x40000000  # <sched.h>

P = ParamSpec("P")
T = TypeVar("T")


@dataclass
class Hosts:
    """Named hosts and the network between them; see the module docstring."""

    addresses: dict[str, str]
    namespaces: dict[str, str] = field(default_factory=dict)
    """host -> network namespace; empty when the hosts share loopback."""
    note: str = ""
    """One line: the layout, or why the hosts share loopback."""
    _threads: dict[str, ThreadPoolExecutor] = field(default_factory=dict)

    @property
    def isolated(self) -> bool:
        return bool(self.namespaces)

    def address(self, host: str) -> str:
        return self.addresses[host]

    def command(self, host: str, argv: Sequence[str]) -> list[str]:
        """`argv` run on `host` (prefixed with `ip netns exec <namespace>` when isolated)."""
        namespace = self.namespaces.get(host)
        return ["ip", "netns", "exec", namespace, *argv] if namespace else list(argv)

    def submit(self, host: str, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> Future[T]:
        """Run `fn` in a thread whose sockets are `host`'s (a few threads per host)."""
        if host not in self._threads:
            namespace = self.namespaces.get(host)
            self._threads[host] = ThreadPoolExecutor(
                max_workers=4,
                thread_name_prefix=f"host-{host}",
                initializer=partial(_enter_namespace, namespace) if namespace else None,
            )
        return self._threads[host].submit(fn, *args, **kwargs)

    def call(self, host: str, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """`fn(*args, **kwargs)` run with `host`'s network; its result or its exception."""
        return self.submit(host, fn, *args, **kwargs).result()

    def close(self) -> None:
        for pool in self._threads.values():
            pool.shutdown(wait=True, cancel_futures=True)
        self._threads.clear()


@contextmanager
def hosts(names: Sequence[str], *, isolate: bool = True) -> Iterator[Hosts]:
    """The hosts `names`, each in a network namespace when `isolate` and this machine allows,
    else all on 127.0.0.1; everything made for them is removed on exit."""
    with ExitStack() as stack:
        made: Hosts | None = None
        reason = "asked for loopback"
        if isolate:
            try:
                made = stack.enter_context(_namespaces(names))
            except _Unavailable as exc:
                reason = str(exc)
        if made is None:
            made = Hosts(
                dict.fromkeys(names, "127.0.0.1"),
                note=f"hosts share 127.0.0.1, no network namespaces ({reason})",
            )
        stack.callback(made.close)
        yield made


class _Unavailable(RuntimeError):
    """Network namespaces cannot be made here; the message says why."""


def _ip(*args: str) -> None:
    try:
        done = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError) as exc:
        raise _Unavailable(f"ip {' '.join(args)}: {exc}") from None
    if done.returncode != 0:
        raise _Unavailable(f"ip {' '.join(args)}: {done.stderr.strip() or done.returncode}")


def _listed() -> list[str]:
    try:
        done = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return []
    return [line.split()[0] for line in done.stdout.splitlines() if line.strip()]


def _remove(namespace: str) -> None:
    """Kill what still runs inside `namespace` (only this module's processes are there), then
    delete it; its veth ends go with it."""
    done = subprocess.run(
        ["ip", "netns", "pids", namespace], capture_output=True, text=True, timeout=30
    )
    for pid in done.stdout.split():
        with suppress(ProcessLookupError, ValueError):
            os.kill(int(pid), signal.SIGKILL)
    subprocess.run(["ip", "netns", "delete", namespace], capture_output=True, timeout=30)


def _remove_leftovers() -> None:
    """Namespaces of earlier runs whose test process is gone; a live run's are left alone."""
    for namespace in _listed():
        owner = namespace.removeprefix(_PREFIX).partition("-")[0]
        if not namespace.startswith(_PREFIX) or not owner.isdigit():
            continue
        try:
            os.kill(int(owner), 0)
        except ProcessLookupError:
            _remove(namespace)
        except PermissionError:
            pass  # alive, someone else's


@contextmanager
def _namespaces(names: Sequence[str]) -> Iterator[Hosts]:
    if os.geteuid() != 0:
        raise _Unavailable("not root: ip netns add needs CAP_SYS_ADMIN")
    if len(names) > 250:
        raise _Unavailable(f"{len(names)} hosts do not fit in {SUBNET}.0/24")
    _remove_leftovers()
    tag = f"{_PREFIX}{os.getpid()}"
    lan = f"{tag}-lan"
    made: list[str] = []
    try:
        for namespace in (lan, *(f"{tag}-{name}" for name in names)):
            _ip("netns", "add", namespace)
            made.append(namespace)
            _ip("-n", namespace, "link", "set", "lo", "up")
        _ip("-n", lan, "link", "add", "br0", "type", "bridge")
        _ip("-n", lan, "link", "set", "br0", "up")
        addresses: dict[str, str] = {}
        for index, name in enumerate(names):
            namespace, port = f"{tag}-{name}", f"p{index}"  # interface names: 15 bytes at most
            addresses[name] = f"{SUBNET}.{index + 2}"
            _ip(
                "-n",
                lan,
                "link",
                "add",
                port,
                "type",
                "veth",
                "peer",
                "name",
                "eth0",
                "netns",
                namespace,
            )
            _ip("-n", lan, "link", "set", port, "master", "br0", "up")
            _ip("-n", namespace, "addr", "add", f"{addresses[name]}/24", "dev", "eth0")
            _ip("-n", namespace, "link", "set", "eth0", "up")
        layout = ", ".join(f"{name} {address}" for name, address in addresses.items())
        yield Hosts(
            addresses,
            namespaces={name: f"{tag}-{name}" for name in names},
            note=f"hosts in network namespaces {tag}-*, one bridge: {layout}",
        )
    finally:
        for namespace in reversed(made):
            _remove(namespace)


def _enter_namespace(namespace: str) -> None:
    """Move the calling thread (only it) into `namespace`: its sockets are made there."""
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(f"/run/netns/{namespace}", os.O_RDONLY | os.O_CLOEXEC)
    try:
        if libc.setns(fd, _CLONE_NEWNET) != 0:
            errno = ctypes.get_errno()
            raise OSError(errno, f"setns into {namespace}: {os.strerror(errno)}")
    finally:
        os.close(fd)
