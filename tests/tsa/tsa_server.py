#!/usr/bin/env python3
"""A Time Stamping Authority on loopback for the tests, made of OpenSSL's own RFC 3161
implementation (`openssl ts -reply`): python3 tsa_server.py DIR. It makes a test CA and a TSA
certificate (extendedKeyUsage timeStamping, critical) in DIR, listens on 127.0.0.1 (a free port),
prints `port <N>` and answers every POST of a TimeStampReq with OpenSSL's TimeStampResp.
With a second argument `tampered`, it is a hostile TSA: the reply parses and attests the
digest and nonce asked, but one bit of its signature is flipped."""
import http.server
import os
import subprocess
import sys
import tempfile

DIR = os.path.abspath(sys.argv[1])
MODE = sys.argv[2] if len(sys.argv) > 2 else "honest"


def sh(*args):
    subprocess.run(args, check=True, cwd=DIR, capture_output=True)


def setup():
    os.makedirs(DIR, exist_ok=True)
    with open(os.path.join(DIR, "tsa.ext"), "w") as f:
        f.write(
            "basicConstraints=CA:FALSE\n"
            "keyUsage=critical,digitalSignature,nonRepudiation\n"
            "extendedKeyUsage=critical,timeStamping\n"
        )
    sh("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
       "-nodes", "-keyout", "ca.key", "-out", "ca.crt", "-subj", "/CN=custos test TSA CA",
       "-days", "2", "-addext", "basicConstraints=critical,CA:TRUE",
       "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    sh("openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
       "-keyout", "tsa.key", "-out", "tsa.csr", "-subj", "/CN=custos test TSA")
    sh("openssl", "x509", "-req", "-in", "tsa.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
       "-CAcreateserial", "-out", "tsa.crt", "-days", "2", "-extfile", "tsa.ext")
    with open(os.path.join(DIR, "serial"), "w") as f:
        f.write("01\n")
    with open(os.path.join(DIR, "ts.cnf"), "w") as f:
        f.write(f"""[ tsa ]
default_tsa = tsa_config1
[ tsa_config1 ]
dir = {DIR}
serial = $dir/serial
crypto_device = builtin
signer_cert = $dir/tsa.crt
certs = $dir/ca.crt
signer_key = $dir/tsa.key
signer_digest = sha256
default_policy = 1.2.3.4.1
digests = sha256, sha384, sha512
accuracy = secs:1
ordering = yes
tsa_name = yes
ess_cert_id_chain = no
ess_cert_id_alg = sha256
""")


class Handler(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        n = int(self.headers.get("Content-Length", "0"))
        query = self.rfile.read(n)
        with tempfile.TemporaryDirectory() as t:
            q, r = os.path.join(t, "q.tsq"), os.path.join(t, "r.tsr")
            with open(q, "wb") as f:
                f.write(query)
            done = subprocess.run(["openssl", "ts", "-reply", "-config", os.path.join(DIR, "ts.cnf"),
                                   "-queryfile", q, "-out", r], capture_output=True)
            if done.returncode != 0:
                self.send_response(400)
                self.end_headers()
                self.wfile.write(done.stderr)
                return
            body = open(r, "rb").read()
        if MODE == "tampered":
            # The signature is the reply's last field: flip a bit of it.
            body = body[:-1] + bytes([body[-1] ^ 1])
        self.send_response(200)
        self.send_header("Content-Type", "application/timestamp-reply")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


if __name__ == "__main__":
    setup()
    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    print(f"port {server.server_address[1]}", flush=True)
    server.serve_forever()
