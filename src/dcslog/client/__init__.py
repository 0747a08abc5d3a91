"""The client side of dcslog: commands that talk to any DCS-compatible endpoint (dcslog itself or the real DCS).

``api`` is the HTTP client (signed with :func:`dcslog.signing.sign_request`, the
verifier's own signer), ``config`` the profile file and environment,
``download`` resumable verified downloads, ``progress`` the terminal display,
``commands`` the argparse subcommands and their output.
"""

from dcslog.client.commands import add_client_commands

__all__ = ["add_client_commands"]
