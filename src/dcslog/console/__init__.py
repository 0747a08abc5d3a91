"""The web console: static pages served at ``/console`` whose JavaScript calls the public ``/v2`` API itself.

The server holds no console state and sees no console credentials it would
not see from any other DCS client: the browser sends ``X-Auth-Token`` or signs
each request with the AK/SK (``static/dcs-sign.js``), and the secret key
never leaves the tab.
"""

from dcslog.console.routes import add_console_routes

__all__ = ["add_console_routes"]
