#!/usr/bin/env python3
"""A misbehaving DICOMweb server for dcm-fetch --dicomweb's failure tests (tests/shell/dicom_web.bats).

usage: dicomweb_stub.py MODE DICOM_DIR LOG   (prints the port it listens on, then serves)

QIDO-RS (any .../studies or .../series query) answers one series, 1.2.3 / 1.2.3.4, in DICOM JSON;
WADO-RS of a series answers the files of DICOM_DIR as multipart/related, spoiled by MODE:
  ok         well formed
  truncated  the body stops in the last part (no closing delimiter), Content-Length matching
  short      Content-Length promises more than is sent, then the connection closes
  notdicom   the second part says Content-Type: text/plain
  noboundary Content-Type multipart/related without a boundary parameter
  hang       the WADO-RS request is read, then nothing is answered
  big        a well-formed body padded with a 3 MiB preamble
  qidojunk   QIDO-RS answers a JSON array cut in the middle
Every request's path and Authorization header are appended to LOG.
With STUB_TLS=CERT:KEY in the environment it speaks HTTPS with that certificate.
"""
import json
import os
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MODE, DIR, LOG = sys.argv[1], sys.argv[2], sys.argv[3]
BOUNDARY = "vp-stub-3f1c"


def body(files, spoil):
    parts = []
    for i, f in enumerate(files):
        ct = "text/plain" if spoil == "notdicom" and i == 1 else "application/dicom"
        with open(f, "rb") as fh:
            parts.append(b"--" + BOUNDARY.encode() + b"\r\nContent-Type: " + ct.encode() + b"\r\n\r\n" + fh.read() + b"\r\n")
    b = b"".join(parts) + b"--" + BOUNDARY.encode() + b"--\r\n"
    if spoil == "truncated":
        b = b[: -(len(BOUNDARY) + 8) - 1000]
    if spoil == "big":
        b = b"x" * (3 << 20) + b"\r\n" + b
    return b


class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def send(self, code, ctype, data, length=None):
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data) if length is None else length))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(data)
        self.wfile.flush()

    def do_GET(self):
        with open(LOG, "a") as log:
            log.write("%s\t%s\n" % (self.path, self.headers.get("Authorization", "-")))
        path = self.path.split("?")[0]
        if path.endswith("/studies") or path.endswith("/series"):
            if MODE == "qidojunk":
                return self.send(200, "application/dicom+json", b'[{"0020000D": {"vr": "UI", "Value": ["1.2')
            row = {"0020000D": {"vr": "UI", "Value": ["1.2.3"]}, "0020000E": {"vr": "UI", "Value": ["1.2.3.4"]},
                   "00080060": {"vr": "CS", "Value": ["CT"]}, "00201209": {"vr": "IS", "Value": [3]}}
            return self.send(200, "application/dicom+json", json.dumps([row]).encode())
        if "/series/" not in path:
            return self.send(404, "text/plain", b"not here")
        if MODE == "hang":
            time.sleep(60)
            return
        files = sorted(os.path.join(DIR, f) for f in os.listdir(DIR))[:3]
        b = body(files, MODE)
        ct = 'multipart/related; type="application/dicom"'
        if MODE != "noboundary":
            ct += "; boundary=" + BOUNDARY
        if MODE == "short":
            return self.send(200, ct, b[: len(b) // 2], length=len(b))
        self.send(200, ct, b)


srv = ThreadingHTTPServer(("127.0.0.1", 0), H)
if os.environ.get("STUB_TLS"):
    import ssl
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(*os.environ["STUB_TLS"].split(":"))
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
srv.daemon_threads = True
print(srv.server_address[1], flush=True)
srv.serve_forever()
