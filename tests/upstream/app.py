"""The test upstream of tests/proxy.rs: an HTTP/1.1 keep-alive server (threads) that echoes
requests and misbehaves on purpose. Prints "port N" (or "unix PATH") once listening.
Usage: app.py tcp | app.py unix PATH"""
import http.server, os, socket, socketserver, sys, threading, time, zlib

CONNECTIONS = 0
REQUESTS = 0
LOCK = threading.Lock()


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def setup(self):
        global CONNECTIONS
        with LOCK:
            CONNECTIONS += 1
        super().setup()

    def log_message(self, *args):
        pass

    def body(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            data = b""
            while True:
                size = int(self.rfile.readline().strip().split(b";")[0], 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return data
                data += self.rfile.read(size)
                self.rfile.readline()
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n)

    def send(self, code, body, ctype="text/plain", extra=()):
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in extra:
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def raw(self, data, close=True):
        self.wfile.write(data)
        self.wfile.flush()
        if close:
            self.close_connection = True

    def handle_any(self):
        global REQUESTS
        with LOCK:
            REQUESTS += 1
        path = self.path.split("?")[0]
        for prefix in ("/app", "/unix", "/m"):
            if path.startswith(prefix):
                path = path[len(prefix):] or "/"
        if path.startswith("/echo"):
            body = self.body()
            lines = [f"{self.command} {self.path} {self.request_version}"]
            lines += [f"{k}: {v}" for k, v in self.headers.items()]
            lines.append(f"body-length: {len(body)}")
            text = "\n".join(lines).encode() + b"\n\n" + body
            self.send(200, text, extra=[("X-Upstream", "yes"), ("Connection", "keep-alive, x-hop"), ("X-Hop", "secret")])
        elif path == "/ws" and self.headers.get("Upgrade", "").lower() == "websocket":
            # A tunnel echo: after the 101, every byte comes back (framing is the client's).
            self.raw(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
            conn = self.connection
            while True:
                data = conn.recv(65536)
                if not data:
                    break
                conn.sendall(data)
        elif path == "/ws":
            self.send(426, b"upgrade required")
        elif path == "/sink":
            # Reads the body as it comes and answers its length and CRC-32.
            n, crc, left = 0, 0, int(self.headers.get("Content-Length") or 0)
            while left:
                data = self.rfile.read(min(left, 1 << 20))
                if not data:
                    break
                n, crc, left = n + len(data), zlib.crc32(data, crc), left - len(data)
            self.send(200, ("%d %08x" % (n, crc)).encode())
        elif path == "/pid":
            self.send(200, str(os.getpid()).encode())
        elif path == "/count":
            self.send(200, str(CONNECTIONS).encode())
        elif path == "/requests":
            self.send(200, str(REQUESTS).encode())
        elif path.startswith("/big"):
            n = int(self.path.split("n=")[1])
            block = bytes(range(256)) * 4096
            self.send_response(200)
            self.send_header("Content-Length", str(n))
            self.end_headers()
            left = n
            while left:
                chunk = block[: min(left, len(block))]
                self.wfile.write(chunk)
                left -= len(chunk)
        elif path == "/chunked":
            self.raw(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n", close=False)
        elif path == "/cl-te":
            self.raw(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n")
        elif path == "/two-cl":
            self.raw(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!")
        elif path == "/bad-chunk":
            self.raw(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nzz\r\n")
        elif path == "/truncated":
            self.raw(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly ten b")
        elif path == "/close-delimited":
            self.raw(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil the close")
        elif path == "/slow":
            time.sleep(3)
            self.send(200, b"late")
        elif path == "/close":
            self.close_connection = True
        elif path == "/idle-close":
            # Keep-alive in the answer, then the upstream's own idle timeout: closed 100 ms
            # later, while the connection sits in tern's pool.
            self.send(200, b"closing soon")
            self.wfile.flush()
            time.sleep(0.1)
            self.close_connection = True
        else:
            self.send(404, b"no such page")

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_OPTIONS = handle_any


class Tcp(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True


class Unix(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


class UnixHandler(Handler):
    def address_string(self):
        return "unix"

    def setup(self):
        self.client_address = ("unix", 0)
        super().setup()


if __name__ == "__main__":
    if sys.argv[1] == "unix":
        path = sys.argv[2]
        if os.path.exists(path):
            os.unlink(path)
        srv = Unix(path, UnixHandler)
        print("unix " + path, flush=True)
    else:
        srv = Tcp(("127.0.0.1", 0), Handler)
        print("port %d" % srv.server_address[1], flush=True)
    srv.serve_forever()
