"""The test hosts of `tests/server/hosts.py`: namespaces that reach each other only by address,
removed on exit (with what runs in them) and after a crashed run; loopback where they cannot be."""

from __future__ import annotations

import os
import socket
import subprocess
import time

from tests.server.hosts import SUBNET, hosts


def namespaces() -> list[str]:
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    return [line.split()[0] for line in listed.splitlines() if line.strip()]


def pids(namespace: str) -> list[str]:
    listed = subprocess.run(["ip", "netns", "pids", namespace], capture_output=True, text=True)
    return listed.stdout.split()


def echo_once(server: socket.socket) -> bytes:
    connection, _ = server.accept()
    with connection:
        data = connection.recv(64)
        connection.sendall(data.upper())
    return data


def talk(address: str, port: int) -> bytes:
    with socket.create_connection((address, port), timeout=10) as client:
        client.sendall(b"ping")
        return client.recv(64)


def test_one_host_reaches_another_by_its_address_and_nothing_is_left() -> None:
    with hosts(["a", "b"]) as made:
        listening = made.call("b", socket.create_server, (made.address("b"), 0))
        with listening:
            port = listening.getsockname()[1]
            echoed = made.submit("b", echo_once, listening)
            assert made.call("a", talk, made.address("b"), port) == b"PING"
            assert echoed.result() == b"ping"
        if made.isolated:
            assert made.address("a") != made.address("b")
            assert made.address("b").startswith(f"{SUBNET}.")
            shown = subprocess.run(made.command("a", ["ip", "-o", "addr"]), capture_output=True)
            assert f"{made.address('a')}/24".encode() in shown.stdout
            assert set(made.namespaces.values()) <= set(namespaces())
        else:
            assert made.note.startswith("hosts share 127.0.0.1"), made.note
    assert not [name for name in namespaces() if name.startswith(f"fyhosts{os.getpid()}-")]


def test_loopback_when_asked() -> None:
    with hosts(["a"], isolate=False) as made:
        assert not made.isolated and made.address("a") == "127.0.0.1"
        assert made.command("a", ["true"]) == ["true"]
        assert "asked for loopback" in made.note


def test_a_crashed_runs_namespaces_and_processes_are_removed() -> None:
    gone = subprocess.Popen(["true"])
    gone.wait()  # its pid names a run that is over
    leftover = f"fyhosts{gone.pid}-x"
    made_it = subprocess.run(["ip", "netns", "add", leftover], capture_output=True).returncode == 0
    if not made_it:
        with hosts(["a"]) as made:  # where namespaces cannot be made the hosts share loopback
            assert not made.isolated and "no network namespaces" in made.note
        return
    stray = subprocess.Popen(["ip", "netns", "exec", leftover, "sleep", "600"])
    try:
        while str(stray.pid) not in pids(leftover):  # until it has entered the namespace
            time.sleep(0.01)
        with hosts(["a"]) as made:
            assert made.isolated
            assert leftover not in namespaces()
            assert stray.wait(10) == -9  # SIGKILLed with its namespace
    finally:
        if stray.poll() is None:
            stray.kill()
            stray.wait()
        subprocess.run(["ip", "netns", "delete", leftover], capture_output=True)
