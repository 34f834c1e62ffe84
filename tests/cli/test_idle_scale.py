#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Thousands of idle HBONE connections to `hbone serve` over real loopback
sockets: each one mutual TLS 1.3 and an HTTP/2 preface, then nothing. Serve
holds exactly one descriptor per connection and a bounded amount of memory,
refuses one beyond --max-connections, burns no CPU while they idle, and closes
every one at --idle-timeout with GOAWAY(NO_ERROR), all its descriptors given
back; a canary tunnel then moves 1 MiB.

usage: test_idle_scale.py HBONE_BINARY GEN_PKI_SCRIPT SCRATCH_DIR
Prints one line per check and "N passed, M failed"; exits non-zero on failure.
"""
import hashlib
import os
import resource
import selectors
import socket
import ssl
import struct
import subprocess
import sys
import time

# The cli suite's helpers; importing it runs none of its checks (and leaves
# no __pycache__ in the source tree).
sys.dont_write_bytecode = True
import test_cli as cli  # noqa: E402
from test_cli import Server, check, fd_count, tls, wait_until  # noqa: E402

N = 2000
IDLE_TIMEOUT = 20.0  # s: time to open all N (5-10 s on 2 cores) and check them
IN_FLIGHT = 64  # connections being set up at once (serve's backlog is 128)
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
SETTINGS, PING, GOAWAY = 4, 6, 7
ACK = 1
PING_DATA = b"idlescal"


def frame(ftype, flags=0, payload=b""):
    return struct.pack(">I", len(payload))[1:] + bytes([ftype, flags]) + b"\0\0\0\0" + payload


class Client:
    """One HBONE client connection, driven by a selector: TCP connect, TLS
    handshake, preface and SETTINGS, our ACK of the server's SETTINGS, and a
    PING whose ACK proves serve has taken all of it. Then it idles as a live
    peer does, answering serve's keepalive PINGs (so that only the idle
    timeout can end it), until EOF; it notes a GOAWAY's error code."""

    def __init__(self, sel, ctx, port):
        self.sel, self.ctx, self.buf = sel, ctx, b""
        self.state, self.error, self.goaway, self.end = "connect", None, None, None
        self.established = self.ended = None
        self.sock = socket.socket()
        self.sock.setblocking(False)
        self.sock.connect_ex(("127.0.0.1", port))
        sel.register(self.sock, selectors.EVENT_WRITE, self)

    def step(self):
        try:
            if self.state == "connect":
                err = self.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if err:
                    raise OSError(err, os.strerror(err))
                self.sel.unregister(self.sock)
                self.sock = self.ctx.wrap_socket(self.sock, do_handshake_on_connect=False)
                self.sel.register(self.sock, selectors.EVENT_WRITE, self)
                self.state = "tls"
            if self.state == "tls":
                try:
                    self.sock.do_handshake()
                except ssl.SSLWantReadError:
                    return self.sel.modify(self.sock, selectors.EVENT_READ, self)
                except ssl.SSLWantWriteError:
                    return self.sel.modify(self.sock, selectors.EVENT_WRITE, self)
                if self.sock.selected_alpn_protocol() != "h2":
                    raise RuntimeError(f"ALPN {self.sock.selected_alpn_protocol()}")
                self.send(PREFACE + frame(SETTINGS))
                self.sel.modify(self.sock, selectors.EVENT_READ, self)
                self.state = "h2"
            self.read()
        except (OSError, RuntimeError) as e:  # ssl.SSLError is an OSError
            self.fail(f"{self.state}: {e!r}")

    def send(self, data):
        if self.sock.send(data) != len(data):  # a few bytes into an empty socket buffer
            raise RuntimeError("short write")

    def read(self):
        end = None
        while not end:
            try:
                data = self.sock.recv(65536)
            except ssl.SSLWantReadError:
                break
            except ConnectionResetError:
                end = "reset"
            else:
                end = None if data else "eof"
                self.buf += data
        self.frames()
        if end:
            self.finish(end)

    def frames(self):
        while len(self.buf) >= 9 and len(self.buf) >= 9 + int.from_bytes(self.buf[:3], "big"):
            size = 9 + int.from_bytes(self.buf[:3], "big")
            ftype, flags, payload = self.buf[3], self.buf[4], self.buf[9:size]
            self.buf = self.buf[size:]
            if ftype == SETTINGS and not flags & ACK and self.state == "h2":
                self.send(frame(SETTINGS, ACK) + frame(PING, 0, PING_DATA))
            elif ftype == PING and flags & ACK and payload == PING_DATA:
                self.state, self.established = "idle", time.monotonic()
            elif ftype == PING and not flags & ACK:
                self.send(frame(PING, ACK, payload))
            elif ftype == GOAWAY:
                self.goaway = struct.unpack(">I", payload[4:8])[0]

    def finish(self, how):
        if self.state != "idle":
            return self.fail(f"the server ended the connection ({how}) in state {self.state}")
        self.end, self.ended = how, time.monotonic()
        self.close()

    def fail(self, why):
        self.error = self.error or why
        self.close()

    def close(self):
        if self.state != "done":
            try:
                self.sel.unregister(self.sock)
            except (KeyError, ValueError):
                pass  # not registered
            self.sock.close()
            self.state = "done"


def run(sel, done, deadline):
    """Runs the selector until done() or the deadline; returns done()."""
    while not done() and time.monotonic() < deadline:
        for key, _ in sel.select(timeout=0.1):
            key.data.step()
    return done()


def proc_cpu(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def proc_rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        return next(int(l.split()[1]) for l in f if l.startswith("VmRSS:"))


def main():
    global N
    started = time.monotonic()
    subprocess.run(["bash", cli.GEN_PKI, cli.PKI], check=True, stdout=subprocess.DEVNULL)
    # One descriptor per connection in each process, and some to spare.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < N + 64:
        N = hard - 64
        print(f"NOTE: the hard descriptor limit is {hard}: testing {N} connections, not 2000")
    need = N + 64 if hard == resource.RLIM_INFINITY else min(N + 64, hard)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, need), hard))

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.check_hostname = False  # the identity is a URI SAN: checked below
    ctx.load_cert_chain(f"{cli.PKI}/client.chain.pem", f"{cli.PKI}/client.key")
    ctx.load_verify_locations(f"{cli.PKI}/bundle-cluster.local.pem")
    ctx.set_alpn_protocols(["h2"])

    srv = Server(["serve", "--listen", "127.0.0.1:0", "--echo", "--max-connections", str(N),
                  "--max-handshakes", str(N), "--idle-timeout", str(int(IDLE_TIMEOUT * 1000))]
                 + tls("server"))
    sel, clients, extra = selectors.DefaultSelector(), [], None
    try:
        pid, base = srv.proc.pid, srv.fd_baseline
        resource.prlimit(pid, resource.RLIMIT_NOFILE,
                         (need, resource.prlimit(pid, resource.RLIMIT_NOFILE)[1]))
        # A first tunnel, so the baseline memory includes what any connection sets up once.
        r = cli.connect(srv.port, "10.0.0.2:80", b"warm-up")
        check("a first tunnel through serve echoes", r.returncode == 0 and r.stdout == b"warm-up",
              r.stderr.decode())
        wait_until(lambda: fd_count(pid) == base)
        rss0 = proc_rss_kib(pid)

        # N connections, IN_FLIGHT at a time, each set up in full and then left idle.
        t0 = time.monotonic()
        deadline = t0 + IDLE_TIMEOUT - 4  # the checks below take about 1.5 s
        while time.monotonic() < deadline:
            busy = sum(1 for c in clients if c.state not in ("idle", "done"))
            while busy < IN_FLIGHT and len(clients) < N:
                clients.append(Client(sel, ctx, srv.port))
                busy += 1
            if len(clients) == N and busy == 0:
                break
            for key, _ in sel.select(timeout=0.1):
                key.data.step()
        setup = time.monotonic() - t0
        idle = [c for c in clients if c.state == "idle"]
        errors = [c.error for c in clients if c.error]
        check(f"{N} connections set up (mTLS 1.3, h2 preface, SETTINGS and PING answered) "
              f"in {setup:.1f} s", len(idle) == N,
              f"{len(idle)} idle, {len(errors)} failed, first: {errors[:3]}")
        peer = idle[0].sock.getpeercert() if idle else {}
        check("serve's certificate carries its SPIFFE ID",
              ("URI", cli.SERVER_ID) in peer.get("subjectAltName", ()), peer)

        n = fd_count(pid)
        check(f"serve holds exactly one descriptor per idle connection ({base} + {N})",
              n == base + N, f"{n} open, baseline {base}")
        rss1 = proc_rss_kib(pid)
        per = (rss1 - rss0) / N
        print(f"     serve's RSS: {rss0} KiB, {rss1} KiB with {N} idle connections: "
              f"{per:.1f} KiB each")
        # Under a sanitizer RSS counts its shadow memory and redzones too.
        with open(cli.HBONE, "rb") as f:
            bound = 256 if b"__asan_init" in f.read() else 64
        check(f"an idle connection costs serve less than {bound} KiB", per < bound,
              f"{per:.1f} KiB")

        # One more is refused at once: accepted, closed, logged.
        since = len(srv.lines)
        extra = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
        t1 = time.monotonic()
        try:
            extra = ctx.wrap_socket(extra)
            outcome = "served: its handshake completed"
        except socket.timeout:
            outcome = "no answer within 5 s"
        except OSError:  # EOF or a reset in the handshake: closed at once
            outcome = None
        check(f"connection {N + 1} is refused at once ({time.monotonic() - t1:.2f} s)",
              outcome is None, outcome)
        logged = srv.wait_lines(rf"{N} connections open \(limit\), refusing", since=since)
        check("serve logs the connection limit", bool(logged), "".join(srv.lines[since:])[-500:])
        n = fd_count(pid)
        check("the refusal leaves serve's descriptors where they were", n == base + N,
              f"{n} open, expected {base + N}")

        cpu0 = proc_cpu(pid)
        time.sleep(1.0)  # not waiting for anything: the window the CPU time is measured over
        spent = proc_cpu(pid) - cpu0
        check(f"serve burns no CPU while {N} connections idle ({spent:.2f} s in 1 s)",
              spent < 0.2, f"{spent:.2f} s of CPU")
        n = fd_count(pid)
        check(f"all {N} are still open after {time.monotonic() - t0:.1f} s "
              f"(idle timeout {IDLE_TIMEOUT:.0f} s)", n == base + N, f"{n} open")

        # The idle timeout: GOAWAY(NO_ERROR), then EOF, on every one.
        run(sel, lambda: all(c.state == "done" for c in idle), t0 + setup + IDLE_TIMEOUT + 15)
        ended = [c for c in idle if c.end == "eof"]
        check(f"the idle timeout ends all {N} with EOF", len(ended) == N,
              f"{len(ended)} EOF, {sum(c.end == 'reset' for c in idle)} reset, "
              f"{sum(c.state != 'done' for c in idle)} still open, "
              f"first error: {[c.error for c in idle if c.error][:2]}")
        goaway = [c for c in idle if c.goaway == 0]
        check("each first received GOAWAY(NO_ERROR)", len(goaway) == N,
              f"{len(goaway)} of {N}; codes: {sorted({c.goaway for c in idle} - {0}, key=str)}")
        lives = [c.ended - c.established for c in ended]
        check(f"each ended {IDLE_TIMEOUT:.0f} s after it was set up "
              f"({min(lives, default=0):.1f} to {max(lives, default=0):.1f} s)",
              bool(lives) and IDLE_TIMEOUT - 2 <= min(lives) and max(lives) <= IDLE_TIMEOUT + 5,
              f"{min(lives, default=0):.2f} to {max(lives, default=0):.2f} s")
        wait_until(lambda: fd_count(pid) == base)
        n = fd_count(pid)
        check("serve's descriptors are back to their baseline", n == base,
              f"{n} open, baseline {base}")
        print(f"     serve's RSS once they are closed: {proc_rss_kib(pid)} KiB")

        data = os.urandom(1 << 20)
        r = cli.connect(srv.port, "10.0.0.2:80", data)
        check("then a canary tunnel echoes 1 MiB byte for byte",
              r.returncode == 0 and hashlib.sha256(r.stdout).digest()
              == hashlib.sha256(data).digest(),
              f"{r.returncode}, {len(r.stdout)} bytes back: {r.stderr.decode()}")
        check("serve is still running", srv.proc.poll() is None, srv.proc.returncode)
    finally:
        for c in clients:
            c.close()
        if extra:
            extra.close()
        sel.close()
        srv.stop()

    passed = sum(1 for x in cli.results if x)
    print(f"{passed} passed, {len(cli.results) - passed} failed "
          f"({time.monotonic() - started:.1f} s)")
    return 0 if passed == len(cli.results) else 1


if __name__ == "__main__":
    sys.exit(main())
