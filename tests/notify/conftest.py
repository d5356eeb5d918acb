"""Real servers for the notify tests, in this process, on free ports: an SMTP server (aiosmtpd) and HTTP
receivers for webhooks (tests/notify/webhook_helpers.py); and the digest tests' tenants and settings
(tests/notify/digest_helpers.py)."""

import email
import socket
from email import policy

import pytest
from aiosmtpd.controller import Controller

from tests.notify import digest_helpers, webhook_helpers
from tests.notify.digest_helpers import build_acme, build_charlie
from tests.notify.webhook_helpers import Receiver


def _free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Inbox:
    """Collects every message the server accepts. `fail_next = n` refuses the next n with a 451."""

    def __init__(self, port):
        self.port = port
        self.url = f"smtp://127.0.0.1:{port}"  # EMAIL_URL for a worker process
        self.messages = []
        self.fail_next = 0

    async def handle_DATA(self, server, session, envelope):
        if self.fail_next:
            self.fail_next -= 1
            return "451 Try again later"
        message = email.message_from_bytes(envelope.content, policy=policy.default)
        message.envelope_recipients = list(envelope.rcpt_tos)
        self.messages.append(message)
        return "250 OK"

    def to(self, address):
        return [m for m in self.messages if address in m.envelope_recipients]


@pytest.fixture
def smtp(settings):
    """Django sends through the real SMTP server; the test reads `smtp.messages` (parsed MIME)."""
    inbox = Inbox(_free_port())
    controller = Controller(inbox, hostname="127.0.0.1", port=inbox.port)
    controller.start()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", inbox.port
    settings.EMAIL_HOST_USER = settings.EMAIL_HOST_PASSWORD = ""
    settings.EMAIL_USE_TLS = settings.EMAIL_USE_SSL = False
    yield inbox
    controller.stop()


# Webhooks ----------------------------------------------------------------------------------------------


@pytest.fixture
def webhook_site(settings):
    """Links in webhook payloads and emails start with webhook_helpers.SITE."""
    settings.SITE_URL = webhook_helpers.SITE


@pytest.fixture
def receiver():
    server = Receiver()
    yield server
    server.stop()


@pytest.fixture
def charlie_receiver():
    server = Receiver()
    yield server
    server.stop()


# Digests -----------------------------------------------------------------------------------------------


@pytest.fixture
def digest_site(settings):
    """Links in digests start with digest_helpers.SITE; digests come from their own sender."""
    settings.SITE_URL = digest_helpers.SITE
    settings.DEFAULT_FROM_EMAIL = "PoV digests <digests@pov.example.com>"


@pytest.fixture
def acme(tenant, actor):
    return build_acme(tenant, actor)


@pytest.fixture
def charlie(other_tenant, acme, actor):
    return build_charlie(other_tenant, acme.members["owner"], actor)
