"""A ClickHouse HTTP endpoint on chDB, for testing clickhouse-go/v2 code.

clickhouse-go/v2 can talk to ClickHouse over HTTP: the SQL in the request
body (or, for inserts, in the `query` URL parameter with the rows in the
body as Native blocks), query parameters as `param_<name>`, settings as URL
parameters, results as Native blocks. This server answers those requests
with chDB, the ClickHouse engine in process, so the driver's real encoding
and decoding of every column type, its query parameters and its errors run
against the real engine. It is test scaffolding, not a ClickHouse server:

  * chDB writes Native blocks at protocol revision 0 (no block info, no
    serialization flags), so the driver's hello query is answered by hand
    with revision 0, and the driver then reads and writes revision-0 blocks;
  * chDB has no users, so the bridge checks the basic-auth or X-ClickHouse-User/-Key
    credentials against the user and password it was started with and answers
    a mismatch as the server does (code 516, AUTHENTICATION_FAILED).

  python chdb_http.py DATA_DIR USER PASSWORD     prints "listening on HOST:PORT"
"""
import base64
import os
import re
import struct
import sys
import tempfile
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from chdb import session

HELLO = "SELECT displayName(), version(), revision(), timezone()"


def uvarint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def string(s):
    b = s.encode()
    return uvarint(len(b)) + b


def hello_block(version):
    """One row (displayName, version, revision=0, timezone) at the client's revision."""
    out = bytearray()
    out += uvarint(1) + b"\x00" + uvarint(2) + struct.pack("<i", -1) + uvarint(0)  # block info
    out += uvarint(4) + uvarint(1)
    for name, typ, value in (("displayName()", "String", string("chdb")),
                             ("version()", "String", string(version)),
                             ("revision()", "UInt32", struct.pack("<I", 0)),
                             ("timezone()", "String", string("UTC"))):
        out += string(name) + string(typ) + b"\x00" + value  # no custom serialization
    return bytes(out)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):  # quiet
        pass

    def reply(self, code, body, headers=None):
        self.send_response(code)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def fail(self, err):
        text = str(err)
        m = re.search(r"Code: (\d+)\.", text)
        code = m.group(1) if m else "1002"
        self.reply(500, (text + "\n").encode(), {"X-ClickHouse-Exception-Code": code})

    def read_body(self):
        if "chunked" in self.headers.get("Transfer-Encoding", ""):
            out = bytearray()
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return bytes(out)
                out += self.rfile.read(size)
                self.rfile.readline()
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def do_GET(self):
        if self.path.startswith("/ping"):
            return self.reply(200, b"Ok.\n")
        return self.do_POST()

    def do_POST(self):
        srv = self.server
        user = self.headers.get("X-ClickHouse-User", "default")
        key = self.headers.get("X-ClickHouse-Key", "")
        auth = self.headers.get("Authorization", "")
        if auth.startswith("Basic "):
            user, _, key = base64.b64decode(auth[6:]).decode().partition(":")
        if user != srv.user or key != srv.password:
            return self.reply(401, ("Code: 516. DB::Exception: %s: Authentication failed: password is incorrect, or there is no user with such name. (AUTHENTICATION_FAILED)\n" % user).encode(),
                              {"X-ClickHouse-Exception-Code": "516"})
        url = urllib.parse.urlparse(self.path)
        q = urllib.parse.parse_qs(url.query, keep_blank_values=True)
        body = self.read_body()
        params = {k[len("param_"):]: v[0] for k, v in q.items() if k.startswith("param_")}
        token = q.get("insert_deduplication_token", [None])[0]
        try:
            with srv.lock:
                if "query" in q:  # an insert: SQL in the URL, Native blocks in the body
                    sql = q["query"][0]
                    m = re.match(r"(?is)\s*INSERT\s+INTO\s+(.+?)\s+FORMAT\s+Native\s*$", sql)
                    if not m:
                        raise RuntimeError("Code: 62. DB::Exception: bridge: unsupported insert %r. (SYNTAX_ERROR)" % sql)
                    fd, path = tempfile.mkstemp(suffix=".native", dir=srv.tmp)
                    with os.fdopen(fd, "wb") as f:
                        f.write(body)
                    settings = " SETTINGS insert_deduplication_token = '%s'" % token.replace("'", "") if token else ""
                    try:
                        srv.s.query("INSERT INTO %s%s SELECT * FROM file('%s', 'Native')" % (m.group(1), settings, path), "CSV")
                    finally:
                        os.remove(path)
                    return self.reply(200, b"")
                sql = body.decode()
                if sql.strip() == HELLO:
                    v = str(srv.s.query("SELECT version()", "TSVRaw")).strip()
                    return self.reply(200, hello_block(v))
                res = srv.s.query(sql, "Native", params=params)
                data = res.bytes() if hasattr(res, "bytes") else bytes(res)
                return self.reply(200, data)
        except Exception as e:  # noqa: BLE001 - every failure goes back to the client
            return self.fail(e)


def main():
    data, user, password = sys.argv[1], sys.argv[2], sys.argv[3]
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    srv.s = session.Session(data)
    srv.lock = threading.Lock()
    srv.user, srv.password = user, password
    srv.tmp = tempfile.mkdtemp(prefix="chdb-http-")
    print("listening on 127.0.0.1:%d" % srv.server_address[1], flush=True)
    srv.serve_forever()


if __name__ == "__main__":
    main()
