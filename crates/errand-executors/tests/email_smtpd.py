"""A real SMTP server (aiosmtpd) for errand's email tests.

Usage: python3 email_smtpd.py PORT MAILDIR   (PORT 0 picks a free one)

Prints "PORT <n>" once it accepts connections. Each accepted message is
written to MAILDIR as <n>.eml (the raw message) beside <n>.json (envelope,
AUTH login, client port, and the message parsed: headers and body parts);
the .json appears last, atomically. Recipients steer the answers:
tempfail@... gets 451, reject@... gets 550. AUTH PLAIN/LOGIN accepts
errand / s3cret (allowed without TLS: loopback only). It exits when its
stdin closes, so it cannot outlive the test that started it.
"""

import asyncio
import email
import email.policy
import itertools
import json
import os
import sys

from aiosmtpd.smtp import SMTP, AuthResult

USER, PASSWORD = b"errand", b"s3cret"


def authenticate(server, session, envelope, mechanism, auth_data):
    ok = auth_data.login == USER and auth_data.password == PASSWORD
    return AuthResult(success=ok, handled=False, auth_data=auth_data)


class Handler:
    def __init__(self, maildir):
        self.maildir = maildir
        self.counter = itertools.count(1)

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        local = address.split("@")[0].lower()
        if local == "tempfail":
            return "451 4.3.0 Temporary failure, try again later"
        if local == "reject":
            return "550 5.1.1 No such user here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        n = next(self.counter)
        base = os.path.join(self.maildir, str(n))
        with open(base + ".eml", "wb") as f:
            f.write(envelope.original_content or envelope.content)
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        parts = [
            {"type": part.get_content_type(), "text": part.get_content()}
            for part in message.walk()
            if not part.is_multipart()
        ]
        login = session.auth_data.login.decode() if session.authenticated else None
        record = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            "login": login,
            "peer_port": session.peer[1],
            "content_type": message.get_content_type(),
            "headers": [[name, str(value)] for name, value in message.items()],
            "parts": parts,
        }
        with open(base + ".json.tmp", "w") as f:
            json.dump(record, f)
        os.rename(base + ".json.tmp", base + ".json")
        return "250 2.0.0 Message accepted for delivery"


def main():
    port, maildir = int(sys.argv[1]), sys.argv[2]
    handler = Handler(maildir)
    loop = asyncio.new_event_loop()
    server = loop.run_until_complete(
        loop.create_server(
            lambda: SMTP(
                handler,
                hostname="smtp.test",
                authenticator=authenticate,
                auth_require_tls=False,
            ),
            "127.0.0.1",
            port,
        )
    )
    # The test holds our stdin: when it goes away (even killed), so do we.
    loop.add_reader(sys.stdin.fileno(), lambda: sys.stdin.buffer.read1() or loop.stop())
    print("PORT", server.sockets[0].getsockname()[1], flush=True)
    loop.run_forever()


if __name__ == "__main__":
    main()
