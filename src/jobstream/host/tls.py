"""TLS for a state directory's server: a CA and a server certificate made once, or a
site's own files; and the client side's verification.

``jobstream server --tls`` makes ``STATE_DIR/tls/ca.pem`` (the CA certificate: public,
what clients verify against), ``ca-key.pem`` and ``server-key.pem`` (mode 0600) and
``server.pem`` (for 127.0.0.1, localhost, this host's name and any ``--tls-host``).
Clients find the CA in the state directory, in a credentials file that carries it
(``jobstream users add`` writes it in), or where the ``tls_ca`` setting points; a
``tls://`` URL without any of them is verified against the system's CAs.
"""

from __future__ import annotations

import datetime
import ipaddress
import re
import socket
import ssl
from pathlib import Path
from typing import NamedTuple

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from jobstream.errors import ConfigError
from jobstream.host.credentials import write_private

TLS_DIR = "tls"
CA_FILE = "ca.pem"
CA_YEARS = 10
SERVER_YEARS = 2
HOST_NAME = re.compile(r"(?=.{1,253}$)[A-Za-z0-9_]([A-Za-z0-9_-]{0,62})(\.[A-Za-z0-9_-]{1,63})*")


class ServerFiles(NamedTuple):
    """What nats-server's ``tls`` block names."""

    cert: Path
    key: Path


def ensure_made(state_dir: Path, hosts: list[str]) -> ServerFiles:
    """The state directory's CA and server certificate, made if missing (a server
    certificate that does not cover ``hosts`` is made anew, signed by the same CA)."""
    for host in hosts:
        _general_name(host)  # a ConfigError before anything is made
    folder = state_dir / TLS_DIR
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    ca_cert, ca_key = folder / CA_FILE, folder / "ca-key.pem"
    if not (ca_cert.exists() and ca_key.exists()):
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "jobstream CA")])
        cert = (
            _builder(name, name, key.public_key(), CA_YEARS)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .sign(key, hashes.SHA256())
        )
        write_private(ca_key, _key_pem(key))
        ca_cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    files = ServerFiles(folder / "server.pem", folder / "server-key.pem")
    names = ["127.0.0.1", "localhost", socket.gethostname(), *hosts]
    if files.cert.exists() and files.key.exists() and _covers(files.cert, names):
        return files
    issuer = x509.load_pem_x509_certificate(ca_cert.read_bytes())
    signer = serialization.load_pem_private_key(ca_key.read_bytes(), password=None)
    if not isinstance(signer, ec.EllipticCurvePrivateKey):
        raise ConfigError(f"{ca_key}: not the EC key jobstream made")
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "jobstream server")])
    cert = (
        _builder(subject, issuer.subject, key.public_key(), SERVER_YEARS)
        .add_extension(x509.SubjectAlternativeName([_general_name(n) for n in names]), False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(signer, hashes.SHA256())
    )
    write_private(files.key, _key_pem(key))
    files.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return files


def given(cert: Path, key: Path) -> ServerFiles:
    """A site's own certificate and key, checked to exist (nats-server reads them)."""
    for path in (cert, key):
        if not path.is_file():
            raise ConfigError(f"{path}: no such file (TLS certificate and key)")
    return ServerFiles(cert.resolve(), key.resolve())


def server_block(files: ServerFiles) -> str:
    """nats-server's ``tls`` block (clients must use TLS; 5 s for the handshake)."""
    return (
        "tls {\n"
        f'  cert_file: "{files.cert.resolve()}"\n'
        f'  key_file: "{files.key.resolve()}"\n'
        "  timeout: 5\n"
        "}\n"
    )


def context(ca_pem: str | None) -> ssl.SSLContext:
    """A client context verifying the server against ``ca_pem`` (PEM text), else the
    system's CAs."""
    return ssl.create_default_context(cadata=ca_pem) if ca_pem else ssl.create_default_context()


def unverified() -> ssl.SSLContext:
    """TLS without checking who answers: only to see that a server is up."""
    found = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    found.check_hostname = False
    found.verify_mode = ssl.CERT_NONE
    return found


def _builder(
    subject: x509.Name, issuer: x509.Name, key: ec.EllipticCurvePublicKey, years: int
) -> x509.CertificateBuilder:
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=365 * years))
    )


def _key_pem(key: ec.EllipticCurvePrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def _general_name(name: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        pass
    if not HOST_NAME.fullmatch(name):
        raise ConfigError(f"--tls-host {name!r}: not a host name or an IP address")
    return x509.DNSName(name)


def _covers(cert_file: Path, names: list[str]) -> bool:
    cert = x509.load_pem_x509_certificate(cert_file.read_bytes())
    try:
        alt = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return False
    have = {str(n) for n in alt.get_values_for_type(x509.DNSName)}
    have |= {str(ip) for ip in alt.get_values_for_type(x509.IPAddress)}
    return set(names) <= have
