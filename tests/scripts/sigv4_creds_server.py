#!/usr/bin/env python3
"""A container-credentials endpoint on loopback for sigv4_botocore_test.sh.

Usage: sigv4_creds_server.py PORT_FILE TOKEN
Binds 127.0.0.1 on an ephemeral port and writes the port to PORT_FILE.
GET /creds with "Authorization: TOKEN" answers the documented JSON
(AccessKeyId, SecretAccessKey, Token, Expiration); another token gets 401;
GET /malformed answers a truncated JSON document that holds a secret.
"""
import http.server
import json
import os
import sys

PORT_FILE, TOKEN = sys.argv[1], sys.argv[2]


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.headers.get("Authorization") != TOKEN:
            self.answer(401, b'{"code":"Unauthorized","message":"bad token"}')
        elif self.path == "/creds":
            self.answer(200, json.dumps({
                "AccessKeyId": "ASIALOOPBACK",
                "SecretAccessKey": "CANARYsecretFromServer",
                "Token": "CANARYsessionFromServer",
                "Expiration": "2100-01-01T00:00:00Z",
            }).encode())
        elif self.path == "/malformed":
            self.answer(200, b'{"AccessKeyId":"ASIA","SecretAccessKey":"CANARYsecretFromServer')
        else:
            self.answer(404, b"{}")

    def answer(self, status, body):
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
with open(PORT_FILE + ".tmp", "w") as f:
    f.write(str(server.server_address[1]))
os.rename(PORT_FILE + ".tmp", PORT_FILE)
server.serve_forever()
