"""webhook.py - the stack test's Alertmanager receiver: keeps every POST
body and serves them back, as one JSON list, on GET /received."""
import http.server
import json

received = []


class Handler(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        received.append(json.loads(body or b"null"))
        self.send_response(200)
        self.end_headers()

    def do_GET(self):
        body = json.dumps(received).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


http.server.ThreadingHTTPServer(("0.0.0.0", 5001), Handler).serve_forever()
