# Test backends for netd-lb, run inside a sandbox's namespace.
#   backend.py http NAME PORT   GET / -> "NAME\n"; /headers -> request headers;
#                               /slow?ms=N -> "NAME\n" after N ms
#                               /conn -> "NAME PORT\n" (the client's port)
#                               /chunked -> 100 chunks "part-I\n", chunked
#                               POST /echo -> the body (any framing) back
#                               /upgrade -> 101, then echoes raw bytes
#                               /close-quietly -> "NAME\n", then closes the
#                               connection without saying so
#                               /close-late -> "NAME\n", then closes the
#                               connection 50 ms later, unannounced and
#                               whatever arrived on it meanwhile
#   backend.py echo NAME PORT   TCP: sends "NAME\n", then echoes everything
#   An ADDR after PORT binds that address (IPv6 too) instead of 0.0.0.0.
import http.server
import socket
import sys
import threading
import time
import urllib.parse

mode, name, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
addr = sys.argv[4] if len(sys.argv) > 4 else "0.0.0.0"
family = socket.AF_INET6 if ":" in addr else socket.AF_INET


class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Buffer the response: header and body leave in one write.
    wbufsize = -1

    def do_GET(self):
        url = urllib.parse.urlparse(self.path)
        if url.path == "/chunked":
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for i in range(100):
                part = f"part-{i}\n".encode()
                self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
            self.wfile.write(b"0\r\n\r\n")
            return
        if url.path == "/upgrade":
            self.send_response(101)
            self.send_header("Upgrade", "echo")
            self.send_header("Connection", "Upgrade")
            self.end_headers()
            self.wfile.flush()
            self.close_connection = True
            while True:
                b = self.connection.recv(65536)
                if not b:
                    return
                self.connection.sendall(b)
        if url.path == "/close-quietly":
            self.close_connection = True
            body = name + "\n"
        elif url.path == "/conn":
            body = f"{name} {self.client_address[1]}\n"
        elif url.path == "/headers":
            body = "".join(f"{k}: {v}\n" for k, v in self.headers.items())
        else:
            if url.path == "/slow":
                ms = int(urllib.parse.parse_qs(url.query).get("ms", ["1000"])[0])
                time.sleep(ms / 1000)
            body = name + "\n"
        data = body.encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
        if url.path == "/close-late":
            self.wfile.flush()
            time.sleep(0.05)
            self.close_connection = True

    def do_POST(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            data = bytearray()
            while True:
                n = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if n == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    break
                data += self.rfile.read(n)
                self.rfile.readline()
        else:
            data = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *a):
        pass


def echo(conn):
    with conn:
        conn.sendall((name + "\n").encode())
        while True:
            b = conn.recv(65536)
            if not b:
                break
            conn.sendall(b)


if mode == "http":

    class Server(http.server.ThreadingHTTPServer):
        address_family = family
        daemon_threads = True

    Server((addr, port), H).serve_forever()
else:
    s = socket.socket(family)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((addr, port))
    s.listen(128)
    while True:
        c, _ = s.accept()
        threading.Thread(target=echo, args=(c,), daemon=True).start()
