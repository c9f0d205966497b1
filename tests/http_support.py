"""Real HTTP against Django's live server."""

import http.client
import json
from dataclasses import dataclass
from urllib.parse import urlparse


@dataclass
class Reply:
    status: int
    headers: dict
    body: bytes

    def json(self):
        return json.loads(self.body)

    def header(self, name):
        return self.headers.get(name.lower())


class HttpClient:
    """Keeps one connection to the live server; headers are sent as given."""

    def __init__(self, base_url):
        parts = urlparse(base_url)
        self.host, self.port = parts.hostname, parts.port
        self.connection = http.client.HTTPConnection(self.host, self.port, timeout=30)

    def request(self, method, path, headers=None, body=None):
        if isinstance(body, dict):
            body = json.dumps(body)
            headers = {"Content-Type": "application/json", **(headers or {})}
        self.connection.request(method, path, body=body, headers=headers or {})
        response = self.connection.getresponse()
        data = response.read()
        return Reply(response.status, {k.lower(): v for k, v in response.getheaders()}, data)

    def get(self, path, **headers):
        return self.request("GET", path, headers)

    def post(self, path, body=None, **headers):
        return self.request("POST", path, headers, body)

    def close(self):
        self.connection.close()
