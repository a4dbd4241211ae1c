# A backend that records every request it reads, for the smuggling suite.
#   recorder.py PORT LOG
# Reads HTTP/1.1 requests off each connection as a plain RFC 9112 server
# would (Content-Length or chunked framing, keep-alive), appends one line per
# request to LOG: "<conn> <method> <target> <body bytes>", or
# "<conn> ERROR <why>" when the framing it got is broken (then closes), and
# answers 200 with the body "seen:<target>\n".
import socket
import sys
import threading

port, log_path = int(sys.argv[1]), sys.argv[2]
lock = threading.Lock()
counter = [0]


def log(line):
    with lock:
        with open(log_path, "a") as f:
            f.write(line + "\n")


class Conn:
    def __init__(self, sock):
        self.sock = sock
        self.buf = b""

    def fill(self):
        data = self.sock.recv(65536)
        if not data:
            raise EOFError
        self.buf += data

    def line(self):
        while b"\r\n" not in self.buf:
            if len(self.buf) > 1 << 20:
                raise ValueError("line too long")
            self.fill()
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def take(self, n):
        while len(self.buf) < n:
            self.fill()
        data, self.buf = self.buf[:n], self.buf[n:]
        return data


def serve(sock, cid):
    c = Conn(sock)
    try:
        while True:
            try:
                request_line = c.line()
            except EOFError:
                return
            parts = request_line.split(b" ")
            if len(parts) != 3:
                log(f"{cid} ERROR request line {request_line!r}")
                return
            method, target, _ = (p.decode("latin-1") for p in parts)
            headers = []
            while True:
                h = c.line()
                if not h:
                    break
                name, sep, value = h.partition(b":")
                if not sep:
                    log(f"{cid} ERROR field line {h!r}")
                    return
                headers.append((name.decode("latin-1").lower(), value.strip()))
            te = [v.lower() for n, v in headers if n == "transfer-encoding"]
            cl = [v for n, v in headers if n == "content-length"]
            body = 0
            if te:
                if te != [b"chunked"] or cl:
                    log(f"{cid} ERROR framing te={te!r} cl={cl!r}")
                    return
                while True:
                    size_line = c.line()
                    size = size_line.split(b";")[0]
                    if not size or any(ch not in b"0123456789abcdefABCDEF" for ch in size):
                        log(f"{cid} ERROR chunk size {size_line!r}")
                        return
                    n = int(size, 16)
                    if n == 0:
                        while c.line():
                            pass
                        break
                    c.take(n)
                    body += n
                    if c.take(2) != b"\r\n":
                        log(f"{cid} ERROR no CRLF after chunk data")
                        return
            elif cl:
                if len(set(cl)) != 1 or not cl[0].isdigit():
                    log(f"{cid} ERROR content-length {cl!r}")
                    return
                body = len(c.take(int(cl[0])))
            log(f"{cid} {method} {target} {body}")
            reply = f"seen:{target}\n".encode("latin-1")
            sock.sendall(
                b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(reply), reply)
            )
    except (EOFError, ConnectionError):
        return
    except ValueError as e:
        log(f"{cid} ERROR {e}")
    finally:
        sock.close()


srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("0.0.0.0", port))
srv.listen(64)
while True:
    s, _ = srv.accept()
    counter[0] += 1
    threading.Thread(target=serve, args=(s, counter[0]), daemon=True).start()
