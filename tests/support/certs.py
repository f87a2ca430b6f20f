"""Test certificates made at test time with `cryptography`: a CA, a server, clients good and bad.

``make_pki(directory)`` writes PEM files and returns their paths:

- ``ca`` signs ``server`` (for 127.0.0.1 and localhost) and the clients;
- ``client`` has the Common Name ``device-42``; ``expired`` is signed by the CA but
  no longer valid; ``untrusted`` has a CN but is signed by another CA (``rogue_ca``);
  ``no_cn`` is a valid client certificate whose subject has no Common Name.

``paho_client(...)`` is the tests' :class:`clients.PahoClient` over TLS and/or WebSocket.
"""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from clients import PahoClient

CLIENT_CN = "device-42"


@dataclass(frozen=True)
class Pair:
    """A certificate and its private key, as PEM files."""

    cert: Path
    key: Path


@dataclass(frozen=True)
class Pki:
    ca: Path
    rogue_ca: Path
    server: Pair
    client: Pair
    expired: Pair
    untrusted: Pair
    no_cn: Pair


def _name(common_name: str | None, org: str = "zanzara tests") -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, org)]
    if common_name is not None:
        attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, common_name))
    return x509.Name(attrs)


class _Authority:
    def __init__(self, common_name: str) -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.name = _name(common_name)
        now = datetime.datetime.now(datetime.UTC)
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(self.name)
            .issuer_name(self.name)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(self.key.public_key()), critical=False)
            .sign(self.key, hashes.SHA256())
        )

    def issue(
        self,
        common_name: str | None,
        *,
        server: bool = False,
        expired: bool = False,
    ) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        if expired:
            not_before, not_after = now - datetime.timedelta(days=30), now - datetime.timedelta(days=1)
        else:
            not_before, not_after = now - datetime.timedelta(days=1), now + datetime.timedelta(days=30)
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name(common_name))
            .issuer_name(self.name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(not_before)
            .not_valid_after(not_after)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()), critical=False
            )
            .add_extension(
                x509.ExtendedKeyUsage(
                    [ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH]
                ),
                critical=False,
            )
        )
        if server:
            builder = builder.add_extension(
                x509.SubjectAlternativeName(
                    [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
                ),
                critical=False,
            )
        return builder.sign(self.key, hashes.SHA256()), key


def _write_pair(directory: Path, stem: str, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> Pair:
    cert_path = directory / f"{stem}.crt"
    key_path = directory / f"{stem}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    key_path.chmod(0o600)
    return Pair(cert_path, key_path)


def make_pki(directory: Path) -> Pki:
    directory.mkdir(parents=True, exist_ok=True)
    ca = _Authority("zanzara test CA")
    rogue = _Authority("rogue CA")
    ca_path = directory / "ca.crt"
    ca_path.write_bytes(ca.cert.public_bytes(serialization.Encoding.PEM))
    rogue_path = directory / "rogue-ca.crt"
    rogue_path.write_bytes(rogue.cert.public_bytes(serialization.Encoding.PEM))
    return Pki(
        ca=ca_path,
        rogue_ca=rogue_path,
        server=_write_pair(directory, "server", *ca.issue("localhost", server=True)),
        client=_write_pair(directory, "client", *ca.issue(CLIENT_CN)),
        expired=_write_pair(directory, "expired", *ca.issue("expired-device", expired=True)),
        untrusted=_write_pair(directory, "untrusted", *rogue.issue("intruder")),
        no_cn=_write_pair(directory, "no-cn", *ca.issue(None)),
    )


def paho_client(
    port: int,
    *,
    ca: Path | None = None,
    cert: Pair | None = None,
    ws_path: str | None = None,
    **kwargs: Any,
) -> PahoClient:
    """A connected PahoClient: TLS when ``ca`` is given (with ``cert`` as client certificate),
    MQTT over WebSocket when ``ws_path`` is."""
    client = PahoClient(port, connect=False, **kwargs)
    if ws_path is not None:
        client.client.transport = "websockets"
        client.client.ws_set_options(path=ws_path)
    if ca is not None:
        client.client.tls_set(
            ca_certs=str(ca),
            certfile=str(cert.cert) if cert else None,
            keyfile=str(cert.key) if cert else None,
        )
    client.connect()
    return client
