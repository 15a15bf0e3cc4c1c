from schemas.errors import SentistreamError


class ConsoleError(SentistreamError):
    """Root of console errors; each message is one line that says what to fix."""


class NoUsers(ConsoleError):
    """The console would have nobody to let in."""


class UserError(ConsoleError):
    """A ``sentistream users`` request that cannot be done (unknown user, duplicate, bad password)."""


class PortInUse(ConsoleError):
    """Another process listens on console.host:console.port."""
