#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Interop with HTTP/2 stacks that are not libhbone, in both roles:

- a client and a server written with Python's h2 (Debian python3-h2) over
  Python's ssl (OpenSSL), against `hbone serve` and `hbone connect`/`forward`;
- nghttpx (Debian nghttp2-proxy) in HTTP/2 proxy mode with client-certificate
  verification, as the server for `hbone connect`;
- the Python h2 peer playing ztunnel's looser way of ending streams, in both
  roles: RST_STREAM(NO_ERROR) after its END_STREAM or after both, CANCEL and
  CONNECT_ERROR resets, an app-side TCP RST sent on as END_STREAM.

usage: test_interop.py HBONE_BINARY GEN_PKI_SCRIPT SCRATCH_DIR
Prints one line per check and "N passed, M failed"; exits non-zero on failure.
"""
import hashlib
import os
import re
import shutil
import socket
import ssl
import struct
import subprocess
import sys
import threading
import time

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import h2.settings
import hyperframe.frame

HBONE, GEN_PKI, SCRATCH = sys.argv[1], sys.argv[2], sys.argv[3]
PKI = os.path.join(SCRATCH, "pki")
SERVER_ID = "spiffe://cluster.local/ns/default/sa/server"
CLIENT_ID = "spiffe://cluster.local/ns/default/sa/client"
MiB = 1 << 20
NO_ERROR, CANCEL, CONNECT_ERROR = 0x0, 0x8, 0xa  # HTTP/2 error codes
results = []


def check(name, ok, detail=""):
    results.append(bool(ok))
    print(("ok   " if ok else "FAIL ") + name + ("" if ok else ": " + str(detail)), flush=True)


def tls_flags(leaf):
    return ["--cert", f"{PKI}/{leaf}.chain.pem", "--key", f"{PKI}/{leaf}.key",
            "--ca", f"{PKI}/bundle-cluster.local.pem"]


def tls_context(server, leaf):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER if server else ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.load_cert_chain(f"{PKI}/{leaf}.chain.pem", f"{PKI}/{leaf}.key")
    ctx.load_verify_locations(f"{PKI}/bundle-cluster.local.pem")
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.check_hostname = False  # HBONE checks the SPIFFE ID, never a host name
    ctx.set_alpn_protocols(["h2"])
    return ctx


def uri_sans(tls_sock):
    return [v for k, v in tls_sock.getpeercert().get("subjectAltName", ()) if k == "URI"]


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Hbone:
    """A long-running hbone process whose first log line names its port."""

    def __init__(self, args):
        self.proc = subprocess.Popen([HBONE] + args, stderr=subprocess.PIPE, text=True)
        first = self.proc.stderr.readline()
        self.lines = [first]
        self.port = int(re.search(r"\(port (\d+)\)", first).group(1))
        self.logged = threading.Condition()
        self.reader = threading.Thread(target=self._read_log, daemon=True)
        self.reader.start()

    def _read_log(self):
        for line in self.proc.stderr:
            with self.logged:
                self.lines.append(line)
                self.logged.notify_all()

    def wait_line(self, pattern, timeout=20):
        """The first log line matching pattern, waiting up to timeout seconds
        for it to be written; "" if none was."""
        def found():
            return next((line for line in self.lines if re.search(pattern, line)), "")
        with self.logged:
            self.logged.wait_for(found, timeout)
            return found()

    def stop(self):
        """Terminate it; its log has been read to the end on return."""
        self.proc.terminate()
        self.proc.wait(timeout=10)
        self.reader.join(10)


class H2Peer:
    """A blocking h2 connection with per-stream echo and receive buffers."""

    def __init__(self, sock, client):
        self.sock = sock
        cfg = h2.config.H2Configuration(client_side=client, validate_outbound_headers=False,
                                        normalize_outbound_headers=False,
                                        validate_inbound_headers=False)
        self.conn = h2.connection.H2Connection(config=cfg)
        self.conn.local_settings = h2.settings.Settings(client=client, initial_values={
            h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 4 * MiB})
        self.conn.initiate_connection()
        self.conn.increment_flow_control_window(16 * MiB)
        self.pending = {}   # stream -> bytes waiting for window
        self.end_after = set()  # streams to end once pending is flushed
        self.received = {}  # stream -> bytearray
        self.status = {}
        self.ended = set()
        self.reset = {}
        self.requests = []  # streams a client opened, in order (server side)
        self.failure = None  # why until() stopped early: the peer left or broke HTTP/2
        self.lock = threading.Lock()
        self.flush()

    def flush(self):
        for stream in list(self.pending):
            data = self.pending[stream]
            while data:
                room = min(self.conn.local_flow_control_window(stream),
                           self.conn.max_outbound_frame_size, len(data))
                if room <= 0:
                    break
                self.conn.send_data(stream, data[:room])
                data = data[room:]
            self.pending[stream] = data
            if not data:
                del self.pending[stream]
                if stream in self.end_after:
                    self.end_after.discard(stream)
                    self.conn.end_stream(stream)
        out = self.conn.data_to_send()
        if out:
            self.sock.sendall(out)

    def send(self, stream, data, end=False):
        self.pending[stream] = self.pending.get(stream, b"") + data
        if end:
            self.end_after.add(stream)
        self.flush()

    def pump(self, on_event=None):
        data = self.sock.recv(65536)
        if not data:
            return False
        for ev in self.conn.receive_data(data):
            if isinstance(ev, h2.events.DataReceived):
                self.received.setdefault(ev.stream_id, bytearray()).extend(ev.data)
                self.conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
            elif isinstance(ev, h2.events.ResponseReceived):
                self.status[ev.stream_id] = int(dict(ev.headers)[b":status"])
            elif isinstance(ev, h2.events.StreamEnded):
                self.ended.add(ev.stream_id)
            elif isinstance(ev, h2.events.StreamReset):
                self.reset[ev.stream_id] = ev.error_code
            elif isinstance(ev, h2.events.RequestReceived):
                self.requests.append(ev.stream_id)
            if on_event:
                on_event(ev)
        self.flush()
        return True

    def until(self, cond, timeout=20):
        """Pump frames until cond() holds, the connection ends or timeout
        seconds pass; returns cond(). Tests wait on these events, never sleep."""
        deadline = time.monotonic() + timeout
        try:
            while not cond():
                left = deadline - time.monotonic()
                if left <= 0:
                    self.failure = "timed out"
                    break
                self.sock.settimeout(left)
                if not self.pump():
                    self.failure = "connection closed"
                    break
        except (OSError, h2.exceptions.ProtocolError) as e:
            self.failure = repr(e)
        return cond()

    def reset_closed_stream(self, stream, code):
        """RST_STREAM on a stream that both END_STREAMs have closed: h2 refuses
        to send one there, ztunnel's h2 stack does (a normal end), so the frame
        goes out as raw bytes, after everything h2 has queued."""
        self.flush()
        self.sock.sendall(hyperframe.frame.RstStreamFrame(stream, error_code=code).serialize())


# --- a Python h2 HBONE server, for hbone connect / forward -------------------

def h2_server(leaf, answer):
    """Serve HBONE on a fresh port: answer(authority) gives the status; a 200
    echoes the tunnel (ending it when the client ends). Returns the port."""
    lsock = socket.socket()
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(16)
    ctx = tls_context(True, leaf)

    def serve(raw):
        try:
            tls = ctx.wrap_socket(raw, server_side=True)
        except (ssl.SSLError, OSError):
            return  # refused in the handshake
        if tls.selected_alpn_protocol() != "h2" or uri_sans(tls) != [CLIENT_ID]:
            tls.close()
            return
        peer = H2Peer(tls, client=False)

        def on_event(ev):
            if isinstance(ev, h2.events.RequestReceived):
                h = dict(ev.headers)
                ok = h.get(b":method") == b"CONNECT" and b":path" not in h
                status = answer(h.get(b":authority", b"").decode()) if ok else 400
                peer.conn.send_headers(ev.stream_id, [(":status", str(status))],
                                       end_stream=status != 200)
            elif isinstance(ev, h2.events.DataReceived):
                peer.send(ev.stream_id, ev.data)
                peer.received[ev.stream_id].clear()
            elif isinstance(ev, h2.events.StreamEnded):
                peer.send(ev.stream_id, b"", end=True)

        try:
            while peer.pump(on_event):
                pass
        except (OSError, h2.exceptions.ProtocolError):
            pass

    def accept_loop():
        while True:
            raw, _ = lsock.accept()
            threading.Thread(target=serve, args=(raw,), daemon=True).start()

    threading.Thread(target=accept_loop, daemon=True).start()
    return lsock.getsockname()[1]


def hbone_connect(port, authority, data, expect=SERVER_ID, leaf="client"):
    return subprocess.run([HBONE, "connect", "--peer", f"127.0.0.1:{port}", "--authority",
                           authority, "--expect-id", expect] + tls_flags(leaf),
                          input=data, capture_output=True, timeout=60)


def python_server_tests():
    port = h2_server("server", lambda a: {"10.0.0.2:80": 200, "10.0.0.2:22": 401}.get(a, 503))
    data = os.urandom(MiB)
    r = hbone_connect(port, "10.0.0.2:80", data)
    check("hbone connect -> h2 server: 1 MiB echoed, clean close",
          r.returncode == 0 and r.stdout == data, (r.returncode, len(r.stdout), r.stderr))
    r = hbone_connect(port, "10.0.0.2:22", b"x")
    check("hbone connect -> h2 server: 401 surfaced", r.returncode == 4 and b"401" in r.stderr,
          r.stderr)
    r = hbone_connect(port, "10.0.0.3:80", b"x")
    check("hbone connect -> h2 server: 503 surfaced", r.returncode == 4 and b"503" in r.stderr,
          r.stderr)
    r = hbone_connect(port, "10.0.0.2:80", b"x", leaf="evil-client")
    check("h2 server refuses an untrusted hbone client", r.returncode == 3, r.stderr)

    other = h2_server("client2", lambda a: 200)  # presents another identity
    r = hbone_connect(other, "10.0.0.2:80", b"x")
    check("hbone connect refuses an h2 server with the wrong identity",
          r.returncode == 3 and b"peer presented spiffe://cluster.local/ns/other/sa/client2"
          in r.stderr, r.stderr)

    fwd = Hbone(["forward", "--listen", "127.0.0.1:0", "--peer", f"127.0.0.1:{port}",
                 "--authority", "10.0.0.2:80", "--expect-id", SERVER_ID] + tls_flags("client"))
    ok = [None] * 100

    def one(i):
        payload = os.urandom(MiB)
        got = bytearray()
        with socket.create_connection(("127.0.0.1", fwd.port), timeout=60) as s:
            sender = threading.Thread(target=lambda: (s.sendall(payload),
                                                      s.shutdown(socket.SHUT_WR)))
            sender.start()
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                got.extend(chunk)
            sender.join()
        ok[i] = hashlib.sha256(got).digest() == hashlib.sha256(payload).digest()

    threads = [threading.Thread(target=one, args=(i,)) for i in range(100)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    check("hbone forward -> h2 server: 100 concurrent tunnels of 1 MiB, checksums match",
          all(x is True for x in ok), ok.count(True))
    fwd.stop()


# --- ztunnel's way of ending streams, as the server for hbone connect ---------
#
# ztunnel's h2 stack may follow its END_STREAM with RST_STREAM(NO_ERROR) while
# our side still sends (RFC 9113 8.1, "stop sending, no error"), or send one
# after both END_STREAMs; both are normal ends. CANCEL and CONNECT_ERROR
# without END_STREAM are resets.

def scripted_h2_server(*scripts):
    """Serve one HBONE connection on a fresh port, playing the server's side
    of each tunnel with a script: the n-th CONNECT runs script n as
    script(peer, stream, result) once the one before it has finished. Then
    the connection is served until the client leaves. Returns the port and
    result, a dict the scripts fill in: result["done"] is set at the end,
    result["reset_sent"] is for a script to set once its reset has gone out,
    result["error"] names anything that went wrong."""
    lsock = socket.socket()
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(1)
    lsock.settimeout(30)
    ctx = tls_context(True, "server")
    result = {"done": threading.Event(), "reset_sent": threading.Event()}

    def run():
        try:
            raw, _ = lsock.accept()
            lsock.close()
            with ctx.wrap_socket(raw, server_side=True) as tls:
                peer = H2Peer(tls, client=False)
                for n, script in enumerate(scripts):
                    if not peer.until(lambda: len(peer.requests) > n):
                        result["error"] = f"no CONNECT #{n + 1}: {peer.failure}"
                        return
                    script(peer, peer.requests[n], result)
                # WINDOW_UPDATEs and the client's last frames, until it leaves.
                peer.until(lambda: False, timeout=30)
        except Exception as e:  # reported through the checks, never a hang
            result["error"] = repr(e)
        finally:
            result["done"].set()

    threading.Thread(target=run, daemon=True).start()
    return lsock.getsockname()[1], result


def answer_200(peer, stream):
    peer.conn.send_headers(stream, [(":status", "200")])
    peer.flush()


def send_all(peer, stream, data, end=False):
    """Send data (and END_STREAM) on stream, pumping until it has all left."""
    peer.send(stream, data, end)
    return peer.until(lambda: stream not in peer.pending and stream not in peer.end_after)


class ConnectRun:
    """`hbone connect` with its stdin held open by the test for as long as a
    check needs; stdout and stderr are collected as they arrive, and
    stdout_closed is set when the tool closes its stdout (its way of passing
    on the server's END_STREAM)."""

    def __init__(self, port, authority="10.0.0.2:80"):
        self.proc = subprocess.Popen([HBONE, "connect", "--peer", f"127.0.0.1:{port}",
                                      "--authority", authority, "--expect-id", SERVER_ID]
                                     + tls_flags("client"), stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.stdout, self.stderr = bytearray(), bytearray()
        self.stdout_closed = threading.Event()
        self.readers = [threading.Thread(target=self._collect, daemon=True,
                                         args=(self.proc.stdout, self.stdout, self.stdout_closed)),
                        threading.Thread(target=self._collect, daemon=True,
                                         args=(self.proc.stderr, self.stderr, threading.Event()))]
        for r in self.readers:
            r.start()

    @staticmethod
    def _collect(stream, into, closed):
        while True:
            chunk = stream.read1(65536)
            if not chunk:
                break
            into.extend(chunk)
        closed.set()

    def write(self, data):
        try:
            self.proc.stdin.write(data)
            self.proc.stdin.flush()
        except BrokenPipeError:
            pass  # the tool has gone: its exit code tells why

    def close_stdin(self):
        try:
            self.proc.stdin.close()
        except BrokenPipeError:
            pass

    def exit_code(self, timeout=20):
        """Wait for the tool to exit with stdin as the test left it (still open,
        unless closed); None if it had not exited after timeout seconds."""
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            code = None
        self.close_stdin()
        for r in self.readers:
            r.join(10)
        return code


def ztunnel_server_tests():
    down = os.urandom(MiB)       # server -> hbone connect's stdout
    up = os.urandom(256 * 1024)  # hbone connect's stdin -> server

    # (a) END_STREAM, then RST_STREAM(NO_ERROR) while the client still sends.
    def end_then_no_error(peer, s, result):
        answer_200(peer, s)
        peer.until(lambda: len(peer.received.get(s, b"")) >= len(up))
        result["up"] = bytes(peer.received.get(s, b""))
        send_all(peer, s, down, end=True)
        peer.conn.reset_stream(s, NO_ERROR)
        peer.flush()

    port, result = scripted_h2_server(end_then_no_error)
    run = ConnectRun(port)
    run.write(up)  # stdin stays open: the client's side of the tunnel too
    code = run.exit_code()
    check("hbone connect <- h2 server: END_STREAM then RST_STREAM(NO_ERROR) while stdin is "
          "open: all data on stdout, exit 0",
          code == 0 and run.stdout == down and result.get("up") == up,
          (code, len(run.stdout), len(result.get("up", b"")), run.stderr, result.get("error")))

    # (a') The negative counterpart: RST_STREAM(NO_ERROR) with no END_STREAM
    # before it ends the stream early, which is a reset, not a clean close.
    def no_error_without_end(peer, s, result):
        answer_200(peer, s)
        send_all(peer, s, down)
        peer.conn.reset_stream(s, NO_ERROR)
        peer.flush()

    port, result = scripted_h2_server(no_error_without_end)
    run = ConnectRun(port)
    code = run.exit_code()
    check("hbone connect <- h2 server: RST_STREAM(NO_ERROR) without END_STREAM is a reset, exit 5",
          code == 5 and b"reset" in run.stderr, (code, len(run.stdout), run.stderr))

    # (b), (c) Resets without END_STREAM: what came before them is printed.
    for name, code_sent in (("CANCEL", CANCEL), ("CONNECT_ERROR", CONNECT_ERROR)):
        def data_then_reset(peer, s, result, code_sent=code_sent):
            answer_200(peer, s)
            send_all(peer, s, down)
            peer.conn.reset_stream(s, code_sent)
            peer.flush()

        port, result = scripted_h2_server(data_then_reset)
        run = ConnectRun(port)
        code = run.exit_code()
        check(f"hbone connect <- h2 server: data then RST_STREAM({name}) without END_STREAM: "
              "exit 5, says reset",
              code == 5 and b"reset" in run.stderr and run.stdout == down,
              (code, len(run.stdout), run.stderr))

    # (d) RST_STREAM(NO_ERROR) after both END_STREAMs.
    def no_error_after_both_ends(peer, s, result):
        answer_200(peer, s)
        send_all(peer, s, down, end=True)
        peer.until(lambda: s in peer.ended)  # the client's END_STREAM
        result["up"] = bytes(peer.received.get(s, b""))
        try:
            peer.reset_closed_stream(s, NO_ERROR)
        except OSError:
            pass  # hbone connect may have exited already: its tunnel was done
        result["reset_sent"].set()

    port, result = scripted_h2_server(no_error_after_both_ends)
    run = ConnectRun(port)
    run.write(up)
    closed_first = run.stdout_closed.wait(20)  # the server's END_STREAM arrived ...
    run.close_stdin()                          # ... before ours leaves
    code = run.exit_code()
    result["reset_sent"].wait(20)  # result["up"] is complete
    check("hbone connect <- h2 server: RST_STREAM(NO_ERROR) after both END_STREAMs: exit 0, "
          "checksums match both ways",
          code == 0 and closed_first and result["reset_sent"].is_set()
          and hashlib.sha256(run.stdout).digest() == hashlib.sha256(down).digest()
          and hashlib.sha256(result.get("up", b"")).digest() == hashlib.sha256(up).digest(),
          (code, closed_first, len(run.stdout), len(result.get("up", b"")), run.stderr,
           result.get("error")))

    # (d') hbone connect exits once its tunnel is done, before that late reset
    # can reach it; hbone forward keeps the connection, so there the reset
    # does arrive on the closed stream, and must neither end the connection
    # nor show as a reset of that tunnel.
    def echo_to_end(peer, s, result):
        answer_200(peer, s)
        peer.until(lambda: s in peer.ended)
        send_all(peer, s, bytes(peer.received.get(s, b"")), end=True)

    port, result = scripted_h2_server(no_error_after_both_ends, echo_to_end)
    fwd = Hbone(["forward", "--listen", "127.0.0.1:0", "--peer", f"127.0.0.1:{port}",
                 "--authority", "10.0.0.2:80", "--expect-id", SERVER_ID] + tls_flags("client"))

    def exchange(payload):
        """One local connection through the forward: payload and FIN out, bytes back until EOF."""
        got = bytearray()
        with socket.create_connection(("127.0.0.1", fwd.port), timeout=20) as c:
            c.sendall(payload)
            c.shutdown(socket.SHUT_WR)
            while chunk := c.recv(65536):
                got.extend(chunk)
        return bytes(got)

    first = exchange(up)
    reset_sent = result["reset_sent"].wait(20)  # on the connection before the next CONNECT
    second = exchange(up)
    fwd.stop()  # and its log read to the end
    check("hbone forward <- h2 server: RST_STREAM(NO_ERROR) after both END_STREAMs is a normal "
          "end, the connection carries the next tunnel",
          first == down and reset_sent and second == up
          and not any("reset" in line or "ended" in line for line in fwd.lines),
          (len(first), reset_sent, len(second), fwd.lines, result.get("error")))


# --- a Python h2 HBONE client, against hbone serve ----------------------------

def h2_client(port, leaf="client"):
    raw = socket.create_connection(("127.0.0.1", port), timeout=60)
    tls = tls_context(False, leaf).wrap_socket(raw)
    return tls, H2Peer(tls, client=True)


def open_tunnel(peer, authority, extra=()):
    """Send a CONNECT for authority on the client peer; returns its stream."""
    stream = peer.conn.get_next_available_stream_id()
    peer.conn.send_headers(stream, [(":method", "CONNECT"), (":authority", authority)]
                           + list(extra), end_stream=False)
    peer.flush()
    return stream


def python_client_tests():
    srv = Hbone(["serve", "--listen", "127.0.0.1:0", "--echo"] + tls_flags("server"))
    tls, peer = h2_client(srv.port)
    check("h2 client sees ALPN h2 and the server's SPIFFE ID",
          tls.selected_alpn_protocol() == "h2" and uri_sans(tls) == [SERVER_ID], uri_sans(tls))

    def request(authority, extra=()):
        return open_tunnel(peer, authority, extra)

    def wait(cond, timeout=60):
        return peer.until(cond, timeout)

    # One tunnel, half-closed by the client first.
    s = request("10.0.0.2:80")
    wait(lambda: s in peer.status)
    data = os.urandom(MiB)
    peer.send(s, data, end=True)
    wait(lambda: s in peer.ended)
    check("h2 client -> hbone serve: 200, 1 MiB echoed, server ends after the client",
          peer.status.get(s) == 200 and bytes(peer.received.get(s, b"")) == data
          and s in peer.ended, (peer.status.get(s), len(peer.received.get(s, b""))))

    # 100 concurrent tunnels of 1 MiB on the one connection.
    payloads = {}
    for _ in range(100):
        st = request("10.0.0.2:80")
        payloads[st] = os.urandom(MiB)
    wait(lambda: all(st in peer.status for st in payloads))
    for st, p in payloads.items():
        peer.send(st, p, end=True)
    wait(lambda: all(st in peer.ended for st in payloads), timeout=120)
    good = sum(1 for st, p in payloads.items() if peer.status.get(st) == 200
               and hashlib.sha256(peer.received.get(st, b"")).digest()
               == hashlib.sha256(p).digest())
    check("h2 client -> hbone serve: 100 concurrent tunnels of 1 MiB, checksums match",
          good == 100, good)

    # Requests the server must refuse.
    bad = request("10.0.0.2")  # no port
    with_path = request("10.0.0.2:80", [(":path", "/")])
    wait(lambda: bad in peer.status and (with_path in peer.reset or with_path in peer.status))
    check("h2 client: an authority without a port gets 400", peer.status.get(bad) == 400,
          peer.status.get(bad))
    check("h2 client: CONNECT with :path is reset (PROTOCOL_ERROR)",
          peer.reset.get(with_path) == 1, (peer.reset.get(with_path), peer.status.get(with_path)))
    tls.close()
    srv.stop()

    srv = Hbone(["serve", "--listen", "127.0.0.1:0", "--echo", "--allow",
                 "spiffe://cluster.local/ns/default/sa/nobody"] + tls_flags("server"))
    tls, peer = h2_client(srv.port)
    s = request("10.0.0.2:80")
    wait(lambda: s in peer.status)
    check("h2 client -> hbone serve --allow: 401 for a peer not allowed",
          peer.status.get(s) == 401 and s in peer.ended, peer.status.get(s))
    tls.close()
    srv.stop()

    srv = Hbone(["serve", "--listen", "127.0.0.1:0", "--echo"] + tls_flags("server"))
    try:
        h2_client(srv.port, leaf="evil-client")[0].recv(1)
        refused = False
    except (ssl.SSLError, OSError):
        refused = True
    check("hbone serve refuses an h2 client with an untrusted certificate", refused)
    srv.stop()


# --- ztunnel's way of ending streams, as the client of hbone serve -----------
#
# ztunnel passes an app's TCP RST on as END_STREAM, and its h2 stack may reset
# a stream with NO_ERROR once both END_STREAMs are through. hbone serve dials
# a real upstream here, so the test sees which of FIN and RST reached it.

class Upstream:
    """The tunnel's destination for hbone serve: accepts one TCP connection,
    echoes what it receives (unless echo=False) and records how the bytes
    ended in `end`: "eof" (a FIN: recv gave b"") or "reset" (recv raised
    ConnectionResetError). After an EOF it answers with the SHA-256 of all it
    received, then `tail`, and closes once release() is called. Its listening
    port stays taken until close(), so that no later Upstream gets the same
    authority (hbone serve's log lines are told apart by it)."""

    def __init__(self, echo=True, tail=b""):
        self.lsock = socket.socket()
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(1)
        self.lsock.settimeout(30)
        self.authority = "127.0.0.1:%d" % self.lsock.getsockname()[1]
        self.echo, self.tail = echo, tail
        self.received = bytearray()
        self.end = None
        self.changed = threading.Condition()
        self.released = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    def _record(self, chunk=b"", end=None):
        with self.changed:
            self.received.extend(chunk)
            self.end = end or self.end
            self.changed.notify_all()

    def _serve(self):
        try:
            conn, _ = self.lsock.accept()
        except OSError as e:
            self._record(end="never dialed: " + repr(e))
            return
        with conn:
            conn.settimeout(30)
            try:
                while chunk := conn.recv(65536):
                    self._record(chunk)
                    if self.echo:
                        conn.sendall(chunk)
            except ConnectionResetError:
                self._record(end="reset")
                return
            except OSError as e:
                self._record(end=repr(e))
                return
            self._record(end="eof")
            try:
                conn.sendall(hashlib.sha256(self.received).digest() + self.tail)
            except OSError:
                pass  # the tunnel went away while the tail was still going out
            self.released.wait(30)

    def wait(self, cond, timeout=20):
        with self.changed:
            return self.changed.wait_for(cond, timeout)

    def release(self):
        self.released.set()

    def close(self):
        self.release()
        self.lsock.close()


def ztunnel_client_tests():
    echo = Hbone(["serve", "--listen", "127.0.0.1:0", "--echo"] + tls_flags("server"))
    dial = Hbone(["serve", "--listen", "127.0.0.1:0"] + tls_flags("server"))
    echo_tls, echo_peer = h2_client(echo.port)
    dial_tls, dial_peer = h2_client(dial.port)
    data = os.urandom(256 * 1024)
    digest = hashlib.sha256(data).digest()

    def outcome(srv, authority):
        line = srv.wait_line(rf"authority={re.escape(authority)} .*outcome=")
        return line.rsplit("outcome=", 1)[-1].strip() if line else "no log line"

    def tunnel(peer, authority):
        s = open_tunnel(peer, authority)
        peer.until(lambda: s in peer.status)
        return s

    def received(peer, s):
        return bytes(peer.received.get(s, b""))

    upstreams = []  # all kept listening to the end: each authority stays unique

    def upstream(**kwargs):
        upstreams.append(Upstream(**kwargs))
        return upstreams[-1]

    # (a) Data and END_STREAM, the echo and END_STREAM back, then
    # RST_STREAM(NO_ERROR) on the closed stream: a normal end.
    s = tunnel(echo_peer, "10.0.0.2:8001")
    send_all(echo_peer, s, data, end=True)
    echo_peer.until(lambda: s in echo_peer.ended)
    echo_peer.reset_closed_stream(s, NO_ERROR)
    got = received(echo_peer, s)
    after = tunnel(echo_peer, "10.0.0.2:8002")  # the late reset did not upset the connection
    send_all(echo_peer, after, b"", end=True)
    echo_peer.until(lambda: after in echo_peer.ended)
    check("h2 client -> hbone serve --echo: RST_STREAM(NO_ERROR) after both END_STREAMs logs "
          "outcome=closed, the connection carries on",
          got == data and outcome(echo, "10.0.0.2:8001") == "closed"
          and echo_peer.status.get(after) == 200 and after in echo_peer.ended,
          (len(got), outcome(echo, "10.0.0.2:8001"), echo_peer.status.get(after),
           echo_peer.failure))

    up = upstream()
    s = tunnel(dial_peer, up.authority)
    send_all(dial_peer, s, data, end=True)
    dial_peer.until(lambda: len(received(dial_peer, s)) >= len(data) + len(digest))
    up.release()
    dial_peer.until(lambda: s in dial_peer.ended)
    dial_peer.reset_closed_stream(s, NO_ERROR)
    check("h2 client -> hbone serve: RST_STREAM(NO_ERROR) after both END_STREAMs logs "
          "outcome=closed, the upstream saw a clean EOF",
          received(dial_peer, s) == data + digest and up.end == "eof"
          and outcome(dial, up.authority) == "closed",
          (len(received(dial_peer, s)), up.end, outcome(dial, up.authority), dial_peer.failure))

    # (b) Data, then RST_STREAM(CANCEL) without END_STREAM: the upstream gets
    # a TCP RST, never a clean EOF.
    up = upstream(echo=False)
    s = tunnel(dial_peer, up.authority)
    send_all(dial_peer, s, data)
    up.wait(lambda: len(up.received) >= len(data))  # all through before the reset
    dial_peer.conn.reset_stream(s, CANCEL)
    dial_peer.flush()
    up.wait(lambda: up.end is not None)
    check("h2 client -> hbone serve: RST_STREAM(CANCEL) without END_STREAM resets the upstream "
          "(ConnectionResetError), logs reset-0x8",
          up.received == data and up.end == "reset" and outcome(dial, up.authority) == "reset-0x8",
          (len(up.received), up.end, outcome(dial, up.authority)))

    s = tunnel(echo_peer, "10.0.0.2:8003")
    send_all(echo_peer, s, data)
    echo_peer.until(lambda: len(received(echo_peer, s)) >= len(data))
    echo_peer.conn.reset_stream(s, CANCEL)
    echo_peer.flush()
    check("h2 client -> hbone serve --echo: RST_STREAM(CANCEL) without END_STREAM logs reset-0x8",
          outcome(echo, "10.0.0.2:8003") == "reset-0x8", outcome(echo, "10.0.0.2:8003"))

    # (b') The negative counterpart of (a): RST_STREAM(NO_ERROR) with no
    # END_STREAM before it cuts the stream short, so the upstream is reset too.
    up = upstream(echo=False)
    s = tunnel(dial_peer, up.authority)
    send_all(dial_peer, s, data)
    up.wait(lambda: len(up.received) >= len(data))
    dial_peer.conn.reset_stream(s, NO_ERROR)
    dial_peer.flush()
    up.wait(lambda: up.end is not None)
    check("h2 client -> hbone serve: RST_STREAM(NO_ERROR) without END_STREAM resets the upstream, "
          "logs reset-0x101",
          up.end == "reset" and outcome(dial, up.authority) == "reset-0x101",
          (up.end, outcome(dial, up.authority)))

    # (c) ztunnel's mapping of an app's TCP RST: plain END_STREAM. The
    # upstream sees a clean EOF; the server keeps its own side open until the
    # upstream closes.
    up = upstream(echo=False)
    s = tunnel(dial_peer, up.authority)
    send_all(dial_peer, s, data, end=True)
    up.wait(lambda: up.end is not None)
    dial_peer.until(lambda: len(received(dial_peer, s)) >= len(digest))
    still_open = s not in dial_peer.ended  # the upstream has not closed yet
    up.release()
    dial_peer.until(lambda: s in dial_peer.ended)
    check("h2 client -> hbone serve: END_STREAM gives the upstream a clean EOF; the server ends "
          "its side after the upstream closes, logs outcome=closed",
          up.end == "eof" and up.received == data and received(dial_peer, s) == digest
          and still_open and s in dial_peer.ended and outcome(dial, up.authority) == "closed",
          (up.end, len(up.received), still_open, s in dial_peer.ended,
           outcome(dial, up.authority)))

    # (d) Like ztunnel's h2 stack: our END_STREAM, then RST_STREAM(NO_ERROR)
    # while the server is still sending ("stop sending, no error").
    up = upstream(echo=False, tail=os.urandom(8 * MiB))
    s = tunnel(dial_peer, up.authority)
    send_all(dial_peer, s, data, end=True)
    dial_peer.until(lambda: len(received(dial_peer, s)) >= MiB)  # mid-tail: still sending
    dial_peer.conn.reset_stream(s, NO_ERROR)
    dial_peer.flush()
    check("h2 client -> hbone serve: END_STREAM then RST_STREAM(NO_ERROR) while the server still "
          "sends logs outcome=closed",
          up.end == "eof" and s not in dial_peer.ended and outcome(dial, up.authority) == "closed",
          (up.end, s in dial_peer.ended, outcome(dial, up.authority)))
    for up in upstreams:
        up.close()
    echo_tls.close()
    dial_tls.close()
    echo.stop()
    dial.stop()


# --- nghttpx as the server for hbone connect ----------------------------------

def nghttpx_tests():
    nghttpx = shutil.which("nghttpx") or "/usr/sbin/nghttpx"
    if not os.path.exists(nghttpx):
        check("nghttpx is installed (Debian nghttp2-proxy)", False)
        return
    # nghttpx hands CONNECT to an HTTP/1.1 proxy backend; this one serves a
    # sized echo: an 8-byte length, then that many bytes back, then close
    # (nghttpx does not pass a client's half-close on to its backend).
    backend = socket.socket()
    backend.bind(("127.0.0.1", 0))
    backend.listen(16)

    def serve(c):
        with c:
            buf = b""
            while b"\r\n\r\n" not in buf:
                chunk = c.recv(4096)
                if not chunk:
                    return
                buf += chunk
            head, rest = buf.split(b"\r\n\r\n", 1)
            if not head.startswith(b"CONNECT 127.0.0.1:7 "):
                c.sendall(b"HTTP/1.1 503 Service Unavailable\r\n\r\n")
                return
            c.sendall(b"HTTP/1.1 200 OK\r\n\r\n")
            while len(rest) < 8:
                rest += c.recv(4096)
            size = struct.unpack(">Q", rest[:8])[0]
            rest = rest[8:]
            c.sendall(rest)
            sent = len(rest)
            while sent < size:
                chunk = c.recv(65536)
                if not chunk:
                    return
                c.sendall(chunk)
                sent += len(chunk)

    def accept_loop():
        while True:
            c, _ = backend.accept()
            threading.Thread(target=serve, args=(c,), daemon=True).start()

    threading.Thread(target=accept_loop, daemon=True).start()
    port = free_port()
    log = os.path.join(SCRATCH, "nghttpx.log")
    # --conf=/dev/null: Debian's /etc/nghttpx/nghttpx.conf would also open port 3000.
    proc = subprocess.Popen([nghttpx, "--conf=/dev/null", "--http2-proxy", f"--frontend=127.0.0.1,{port}",
                             f"--backend=127.0.0.1,{backend.getsockname()[1]}",
                             "--verify-client",
                             f"--verify-client-cacert={PKI}/bundle-cluster.local.pem",
                             "--tls-min-proto-version=TLSv1.3",
                             "--frontend-http2-window-size=4194304",
                             "--frontend-http2-connection-window-size=16777216",
                             "--workers=1", f"--errorlog-file={log}", "--accesslog-file=/dev/null",
                             f"{PKI}/server.key", f"{PKI}/server.chain.pem"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.05)  # nghttpx is starting; there is no readiness signal to wait on
        data = os.urandom(2 * MiB)
        r = hbone_connect(port, "127.0.0.1:7", struct.pack(">Q", len(data)) + data)
        check("hbone connect -> nghttpx: 2 MiB through, checksums match, clean close",
              r.returncode == 0 and r.stdout == data, (r.returncode, len(r.stdout), r.stderr))
        r = hbone_connect(port, "127.0.0.1:8", b"x")
        check("hbone connect -> nghttpx: a failing upstream surfaces as non-200",
              r.returncode == 4, (r.returncode, r.stderr))
        r = hbone_connect(port, "127.0.0.1:7", b"x", expect="spiffe://cluster.local/ns/a/sa/b")
        check("hbone connect refuses nghttpx presenting another identity",
              r.returncode == 3 and b"peer presented " + SERVER_ID.encode() in r.stderr, r.stderr)
        r = hbone_connect(port, "127.0.0.1:7", b"x", leaf="evil-client")
        check("nghttpx refuses an untrusted hbone client", r.returncode == 3, r.stderr)
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def main():
    subprocess.run(["bash", GEN_PKI, PKI], check=True, stdout=subprocess.DEVNULL)
    python_server_tests()
    ztunnel_server_tests()
    python_client_tests()
    ztunnel_client_tests()
    nghttpx_tests()
    passed = sum(results)
    print(f"{passed} passed, {len(results) - passed} failed")
    return 0 if passed == len(results) else 1


if __name__ == "__main__":
    sys.exit(main())
