"""A real SMTP server on loopback (aiosmtpd) that keeps what it receives."""
from __future__ import annotations

import asyncio
import email
from collections import Counter
from email import policy

from aiosmtpd.controller import Controller


class Inbox:
    """What the server received, and from which connection (the client's address and port).

    ``messages_per_session`` makes it act as a relay with a limit per connection, answering
    MAIL beyond it with ``over_limit_reply`` (421); ``closes_after_each_message`` as one that
    ends the session; ``drops_message_number`` as one whose connection is lost as that message's
    data ends (counting every message sent to it), so the message is neither accepted nor kept.
    """

    def __init__(self):
        self.messages: list[tuple[list[str], email.message.EmailMessage]] = []
        self.peers: list[tuple[str, int]] = []  # each message's connection
        self.messages_per_session: int | None = None
        self.over_limit_reply = "421 4.7.0 Too many messages on this connection"
        self.closes_after_each_message = False
        self.drops_message_number: int | None = None
        self.data_received = 0

    async def handle_MAIL(self, server, session, envelope, address, mail_options):  # noqa: N802 - aiosmtpd's hook name
        if self.messages_per_session is not None and Counter(self.peers)[session.peer] >= self.messages_per_session:
            return self.over_limit_reply
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's hook name
        self.data_received += 1
        if self.data_received == self.drops_message_number:  # before any reply: the client hears nothing
            server.transport.abort()
            return "451 4.3.0 never written: the connection is gone"
        self.messages.append((list(envelope.rcpt_tos), email.message_from_bytes(envelope.content, policy=policy.default)))
        self.peers.append(session.peer)
        if self.closes_after_each_message:  # after this reply is written
            asyncio.get_running_loop().call_soon(server.transport.close)
        return "250 Message accepted"


class SmtpServer:
    def __init__(self, port: int):
        self.port = port
        self.inbox = Inbox()
        self.controller = None

    def start(self) -> None:
        self.controller = Controller(self.inbox, hostname="127.0.0.1", port=self.port)
        self.controller.start()

    def stop(self) -> None:
        if self.controller:
            self.controller.stop()
            self.controller = None
