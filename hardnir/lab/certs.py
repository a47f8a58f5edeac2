"""TLS material for the etcd controls: a lab CA and, per host, a server and a client certificate (EC P-256)."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from pathlib import Path

from hardnir.lab.common import run

DAYS = 3650


@dataclass(frozen=True)
class HostCerts:
    """Files of one host, named as they are placed in /etc/ssl/etcd."""

    ca: Path
    server: Path
    server_key: Path
    client: Path
    client_key: Path


def make_ca(directory: Path) -> Path:
    """Create ca.pem / ca-key.pem in `directory`; return the certificate path."""
    directory.mkdir(parents=True, exist_ok=True)
    cert, key = directory / "ca.pem", directory / "ca-key.pem"
    config = directory / "ca.cnf"
    config.write_text(
        "[req]\ndistinguished_name = dn\nprompt = no\nx509_extensions = ext\n"
        "[dn]\nCN = hardnir lab CA\nO = hardnir lab\n"
        "[ext]\nbasicConstraints = critical,CA:TRUE\nkeyUsage = critical,keyCertSign,cRLSign\n"
        "subjectKeyIdentifier = hash\n"
    )
    run(["openssl", "req", "-x509", "-new", "-nodes", "-config", config,
         "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-keyout", key, "-out", cert, "-days", str(DAYS), "-set_serial", _serial()])
    key.chmod(0o600)
    return cert


def make_host_certs(ca_dir: Path, directory: Path, name: str, address: str) -> HostCerts:
    """Server certificate (SAN: host IP, 127.0.0.1, localhost, name; serverAuth+clientAuth) and client certificate."""
    directory.mkdir(parents=True, exist_ok=True)
    server_ext = (
        "basicConstraints = critical,CA:FALSE\nkeyUsage = critical,digitalSignature,keyEncipherment\n"
        "extendedKeyUsage = serverAuth,clientAuth\n"
        f"subjectAltName = IP:{address},IP:127.0.0.1,DNS:localhost,DNS:{name}\n"
        "subjectKeyIdentifier = hash\nauthorityKeyIdentifier = keyid\n"
    )
    client_ext = (
        "basicConstraints = critical,CA:FALSE\nkeyUsage = critical,digitalSignature\n"
        "extendedKeyUsage = clientAuth\nsubjectKeyIdentifier = hash\nauthorityKeyIdentifier = keyid\n"
    )
    _issue(ca_dir, directory, "server", name, server_ext)
    _issue(ca_dir, directory, "client", f"{name} client", client_ext)
    ca = directory / "ca.pem"
    ca.write_bytes((ca_dir / "ca.pem").read_bytes())
    return HostCerts(ca, directory / "server.pem", directory / "server-key.pem",
                     directory / "client.pem", directory / "client-key.pem")


def _issue(ca_dir: Path, directory: Path, stem: str, common_name: str, extensions: str) -> None:
    key, csr, cert = directory / f"{stem}-key.pem", directory / f"{stem}.csr", directory / f"{stem}.pem"
    ext = directory / f"{stem}.ext"
    ext.write_text(extensions)
    run(["openssl", "req", "-new", "-nodes", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-keyout", key, "-out", csr, "-subj", f"/O=hardnir lab/CN={common_name}"])
    key.chmod(0o600)
    run(["openssl", "x509", "-req", "-in", csr, "-CA", ca_dir / "ca.pem", "-CAkey", ca_dir / "ca-key.pem",
         "-set_serial", _serial(), "-days", str(DAYS), "-extfile", ext, "-out", cert])
    csr.unlink()
    ext.unlink()


def _serial() -> str:
    return "0x" + secrets.token_hex(16)
