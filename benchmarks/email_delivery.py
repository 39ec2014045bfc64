"""Exception emails: one SMTP session a night against a connection per email.

Starts a real SMTP server on loopback (aiosmtpd) that, like a trust's relay, wants STARTTLS
and a login, then sends the same emails (a watch-list-sized attachment each) both ways,
alternating which goes first, and prints the seconds and their ratio:
  per email  - publish.deliver for each email: connect, STARTTLS, login, send, quit
  one session - publish.SmtpSession, as send_exception_emails uses it

Loopback has no network between the two; --reply-delay-ms holds each of the server's replies
back that long, to stand in for the round trip to a relay on the internet.

    PYTHONPATH=plugins .venv/bin/python benchmarks/email_delivery.py --emails 100 --reply-delay-ms 20
"""
from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import ipaddress
import logging
import os
import secrets
import ssl
import statistics
import sys
import tempfile
import time
from email.message import EmailMessage
from pathlib import Path

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "plugins"))

from trust_attendance import publish  # noqa: E402
from trust_attendance.warehouse import free_port  # noqa: E402

USER, PASSWORD = "pipeline", secrets.token_urlsafe()  # for the benchmark's own throwaway relay


def self_signed_certificate(folder: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.timezone.utc)
    certificate = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "relay.pem", folder / "relay.key"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


class Sink:
    def __init__(self):
        self.received = 0

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's hook name
        self.received += 1
        return "250 Message accepted"


class DelayedSMTP(SMTP):
    """Holds each reply back (not each line of a multi-line reply such as EHLO's)."""

    reply_delay = 0.0
    _reply_continues = False

    async def push(self, status):
        if self.reply_delay and not self._reply_continues:
            await asyncio.sleep(self.reply_delay)
        line = status if isinstance(status, str) else status.decode()
        self._reply_continues = line[3:4] == "-"  # "250-..." lines are followed by more of the same reply
        await super().push(status)


class Relay(Controller):
    def factory(self):
        return DelayedSMTP(self.handler, **self.SMTP_kwargs)


def emails(count: int) -> list[EmailMessage]:
    attachment = os.urandom(40_000)  # about a school's watch-list workbook
    messages = []
    for n in range(count):
        message = EmailMessage()
        message["From"], message["To"] = "attendance@trust.example.org", f"lead{n}@school.example.org"
        message["Subject"] = f"Attendance exceptions: school {n}"
        message.set_content("Missing marks, pupils newly reaching a threshold, unresolved N codes.\n" * 20)
        message.add_attachment(attachment, maintype=publish.XLSX_MIME[0], subtype=publish.XLSX_MIME[1],
                               filename=f"watch_lists_{n}.xlsx")
        messages.append(message)
    return messages


def per_email(messages, settings) -> None:
    for message in messages:
        publish.deliver(message, settings)


def one_session(messages, settings) -> None:
    with publish.SmtpSession(settings) as session:
        for message in messages:
            session.send(message)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--emails", type=int, default=100, help="one a school (default 100)")
    parser.add_argument("--rounds", type=int, default=3, help="each way, alternating which goes first")
    parser.add_argument("--reply-delay-ms", type=float, default=0.0,
                        help="hold each server reply back this long (a stand-in for the network)")
    args = parser.parse_args()
    logging.getLogger("mail.log").setLevel(logging.ERROR)  # aiosmtpd warns of its own deprecated login_data
    with tempfile.TemporaryDirectory() as folder:
        cert_path, key_path = self_signed_certificate(Path(folder))
        os.environ["SSL_CERT_FILE"] = str(cert_path)  # the client's default context trusts this relay
        server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        server_context.load_cert_chain(cert_path, key_path)
        DelayedSMTP.reply_delay = args.reply_delay_ms / 1000
        sink = Sink()
        relay = Relay(sink, hostname="127.0.0.1", port=free_port(), tls_context=server_context,
                      require_starttls=True, auth_require_tls=True,
                      authenticator=lambda server, session, envelope, mechanism, auth_data: AuthResult(
                          success=auth_data.login == USER.encode() and auth_data.password == PASSWORD.encode()))
        relay.start()
        try:
            settings = {"host": "127.0.0.1", "port": relay.port, "user": USER, "password": PASSWORD,
                        "starttls": True, "ssl": False}
            messages = emails(args.emails)
            ways = {"per email": per_email, "one session": one_session}
            timings = {way: [] for way in ways}
            for round_number in range(args.rounds):
                order = list(ways) if round_number % 2 == 0 else list(reversed(ways))
                for way in order:
                    started = time.perf_counter()
                    ways[way](messages, settings)
                    timings[way].append(time.perf_counter() - started)
            if sink.received != 2 * args.rounds * args.emails:
                raise SystemExit(f"the relay received {sink.received} emails, not {2 * args.rounds * args.emails}")
        finally:
            relay.stop()
    print(f"{args.emails} emails with STARTTLS and a login, each server reply held back {args.reply_delay_ms:g} ms, "
          f"{args.rounds} rounds each way, alternated:")
    for way, seconds in timings.items():
        print(f"  {way:12}: " + ", ".join(f"{s:.2f}" for s in seconds) + f" s (median {statistics.median(seconds):.2f} s,"
              f" {1000 * statistics.median(seconds) / args.emails:.1f} ms an email)")
    ratio = statistics.median(timings["one session"]) / statistics.median(timings["per email"])
    print(f"  one session / per email = {ratio:.2f}")


if __name__ == "__main__":
    main()
