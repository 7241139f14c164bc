"""The part of ClickHouse's HTTP interface Tally uses, over chdb (the
current ClickHouse engine, in-process): SQL in the body or `query=` (the
two joined, as ClickHouse joins them for INSERT data), `database=`, the
settings Tally sends as URL parameters, errors as HTTP 500 with the
exception's text. One query at a time: a chdb session is one engine.
The same over HTTPS on a second port, with the certificate and key given.

    python chdb_front.py DATA_DIR PORT HTTPS_PORT CERT_PEM KEY_PEM
"""

import ssl
import sys
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from chdb import session

DATA, PORT, HTTPS_PORT, CERT, KEY = sys.argv[1:6]
ENGINE = session.Session(DATA)
ONE_AT_A_TIME = threading.Lock()
# Parameters that are not settings.
NOT_SETTINGS = {"query", "database", "default_format"}


class Front(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_GET(self):
        if urllib.parse.urlparse(self.path).path == "/ping":
            return self.answer(200, b"Ok.\n")
        self.run()

    def do_POST(self):
        self.run()

    def answer(self, status, body):
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; charset=UTF-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def run(self):
        params = urllib.parse.parse_qs(urllib.parse.urlparse(self.path).query)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode("utf-8") if length else ""
        query = params.get("query", [""])[0]
        sql = f"{query}\n{body}" if query and body else (query or body)
        try:
            with ONE_AT_A_TIME:
                for name, values in params.items():
                    if name not in NOT_SETTINGS:
                        ENGINE.query(f"SET {name} = '{values[0]}'")
                database = params.get("database", ["default"])[0]
                ENGINE.query(f"USE `{database}`")
                result = ENGINE.query(sql, "TabSeparated")
            self.answer(200, result.bytes())
        except Exception as error:  # ClickHouse answers every failure alike
            self.answer(500, str(error).encode("utf-8"))


secure = ThreadingHTTPServer(("127.0.0.1", int(HTTPS_PORT)), Front)
tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
tls.load_cert_chain(CERT, KEY)
secure.socket = tls.wrap_socket(secure.socket, server_side=True)
threading.Thread(target=secure.serve_forever, daemon=True).start()
ThreadingHTTPServer(("127.0.0.1", int(PORT)), Front).serve_forever()
