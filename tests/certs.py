"""Certificates made at test time with the openssl command (no private key is committed):
a CA, and a server and a client certificate it signs, for localhost and 127.0.0.1."""

from __future__ import annotations

import os
import ssl
import subprocess


def makeCertificates(directory: str) -> dict[str, str]:
    """Write ca.pem, server.pem/.key and client.pem/.key into ``directory``; return
    their paths by name."""
    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=directory, check=True, capture_output=True,
                       timeout=60)

    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out",
            "ca.pem", "-days", "2", "-subj", "/CN=test CA", "-addext",
            "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign")
    for name in ("server", "client"):
        openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out",
                f"{name}.csr", "-subj", f"/CN={name}")
        with open(os.path.join(directory, f"{name}.ext"), "w") as f:
            f.write("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
        openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
                "-CAcreateserial", "-out", f"{name}.pem", "-days", "2", "-extfile",
                f"{name}.ext")
    names = ("ca.pem", "server.pem", "server.key", "client.pem", "client.key")
    return {n: os.path.join(directory, n) for n in names}


def serverContext(certs: dict[str, str], requireClient: bool = False) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(certs["server.pem"], certs["server.key"])
    if requireClient:
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.load_verify_locations(certs["ca.pem"])
    return ctx


def clientContext(certs: dict[str, str], withCertificate: bool = False) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(certs["ca.pem"])
    if withCertificate:
        ctx.load_cert_chain(certs["client.pem"], certs["client.key"])
    return ctx
