"""A counting HTTP/1.1 proxy for the benchmark: forwards each request to moto and records its
operation and when it started and ended, so that the number of requests of one submit and the
overlap of its lookups can be measured. One request per connection (Connection: close).

With a round-trip time (`rtt`, seconds) it holds every request that long before answering, as a
far region would, and answers ECR's GetDownloadUrlForLayer itself with a URL of its own that
serves a linux/amd64 image config (moto does not implement the operation), so that the platform
check completes and is cached as it is on ECR; that download is held and counted too."""

import json
import socket
import threading
import time


def _operation(method, path, headers, body):
    target = headers.get("x-amz-target")
    if target:
        return target.rsplit(".", 1)[-1]
    text = body.decode("utf-8", "replace")
    for kv in text.split("&"):
        k, _, v = kv.partition("=")
        if k == "Action":
            return v
    return f"S3 {method} {path.split('?')[0]}"


def _read_request(rfile):
    line = rfile.readline()
    if not line:
        return None
    request_line = line.decode("latin-1").rstrip("\r\n")
    headers, raw_headers = {}, []
    while True:
        h = rfile.readline()
        if h in (b"\r\n", b"\n", b""):
            break
        name, _, value = h.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
        raw_headers.append((name.strip(), value.strip()))
    body = b""
    if "chunked" in headers.get("transfer-encoding", "").lower():
        raw = b""
        while True:
            size_line = rfile.readline()
            raw += size_line
            size = int(size_line.split(b";")[0].strip() or b"0", 16)
            chunk = rfile.read(size + 2)
            raw += chunk
            if size == 0:
                break
            body += chunk[:size]
        body_raw = raw
    else:
        n = int(headers.get("content-length", "0") or 0)
        body = rfile.read(n) if n else b""
        body_raw = body
    return request_line, headers, raw_headers, body, body_raw


class CountingProxy:
    """Start with `CountingProxy(upstream_port)`; `.url`, `.log` (list of dicts), `.reset()`."""

    def __init__(self, upstream_port, rtt=0.0):
        self.upstream = ("127.0.0.1", upstream_port)
        self.rtt = rtt
        self.log = []
        self.lock = threading.Lock()
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(128)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True).start()

    def _answer(self, op, method, path, body):
        return _answer_for(self.url, op, method, path, body)

    def reset(self):
        with self.lock:
            self.log = []

    def _accept(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn):
        start = time.perf_counter()
        try:
            rfile = conn.makefile("rb")
            req = _read_request(rfile)
            if req is None:
                return
            request_line, headers, raw_headers, body, body_raw = req
            method, path = request_line.split(" ")[:2]
            op = _operation(method, path, headers, body)
            if self.rtt:
                time.sleep(self.rtt)
            own = self._answer(op, method, path, body) if self.rtt else None
            if own is not None:
                op = "config blob" if path.startswith(BLOB) else op
                conn.sendall(own)
                with self.lock:
                    self.log.append({"op": op, "status": 200, "start": start,
                                     "end": time.perf_counter()})
                return
            head = request_line + "\r\n"
            for k, v in raw_headers:
                if k.lower() not in ("connection", "keep-alive"):
                    head += f"{k}: {v}\r\n"
            head += "Connection: close\r\n\r\n"
            up = socket.create_connection(self.upstream)
            up.sendall(head.encode("latin-1") + body_raw)
            chunks = []
            while True:
                b = up.recv(65536)
                if not b:
                    break
                chunks.append(b)
            up.close()
            resp = b"".join(chunks)
            status = int(resp.split(b" ", 2)[1]) if resp else 0
            # Make sure the client does not keep the connection.
            head_end = resp.find(b"\r\n\r\n")
            if head_end >= 0:
                lines = resp[:head_end].split(b"\r\n")
                lines = [l for l in lines if not l.lower().startswith((b"connection:", b"keep-alive:"))]
                resp = b"\r\n".join(lines + [b"Connection: close"]) + resp[head_end:]
            conn.sendall(resp)
            end = time.perf_counter()
            with self.lock:
                self.log.append({"op": op, "status": status, "start": start, "end": end})
        except Exception as e:  # a benchmark helper: report, do not crash the run
            with self.lock:
                self.log.append({"op": f"proxy error: {e}", "status": 0, "start": start,
                                 "end": time.perf_counter()})
        finally:
            conn.close()


BLOB = "/__bench/config/"
CONFIG = json.dumps({"architecture": "amd64", "os": "linux", "config": {}}).encode()


def _response(content_type, body):
    head = (f"HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\nContent-Length: {len(body)}\r\n"
            "x-amzn-RequestId: bench-proxy\r\nConnection: close\r\n\r\n")
    return head.encode("latin-1") + body


def _answer_for(url, op, method, path, body):
    """The proxy's own answer (latency mode): ECR's layer download URL, and the blob behind it."""
    if op == "GetDownloadUrlForLayer":
        digest = json.loads(body or b"{}").get("layerDigest", "")
        out = {"downloadUrl": f"{url}{BLOB}{digest}", "layerDigest": digest}
        return _response("application/x-amz-json-1.1", json.dumps(out).encode())
    if method == "GET" and path.startswith(BLOB):
        return _response("application/octet-stream", CONFIG)
    return None


def chain(entries):
    """The longest sequence of requests, each starting after the previous one ended: how many
    round trips deep the requests are."""
    es = sorted(entries, key=lambda e: e["start"])
    depth = []
    for i, e in enumerate(es):
        before = [depth[j] for j in range(i) if es[j]["end"] <= e["start"]]
        depth.append(1 + max(before, default=0))
    return max(depth, default=0)


def overlap(entries):
    """Sum of durations, wall time from the first start to the last end, and the most requests
    in flight at once."""
    if not entries:
        return {"requests": 0, "sum_ms": 0.0, "wall_ms": 0.0, "max_in_flight": 0}
    total = sum(e["end"] - e["start"] for e in entries)
    wall = max(e["end"] for e in entries) - min(e["start"] for e in entries)
    events = sorted([(e["start"], 1) for e in entries] + [(e["end"], -1) for e in entries])
    cur = peak = 0
    for _, d in events:
        cur += d
        peak = max(peak, cur)
    return {
        "requests": len(entries),
        "sum_ms": round(total * 1000, 1),
        "wall_ms": round(wall * 1000, 1),
        "max_in_flight": peak,
    }
