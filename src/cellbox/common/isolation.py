"""Whether this machine can isolate the local server's containers, and the one line said when it can't.

The local server jails code with bubblewrap, which needs Linux; the client runs on any OS. A client asks
`missing()` before it starts a server, so that a laptop without bubblewrap hears why at once, in the notebook,
rather than from a server that exits into its log; the server asks it too, then runs bubblewrap to be sure, and
says `refusal(reason)` in the same words whichever check failed. No imports from the rest of cellbox.
"""

from __future__ import annotations

import shutil
import sys

__all__ = ["missing", "refusal"]

_SYSTEMS = {"darwin": "macOS", "win32": "Windows", "cygwin": "Windows (Cygwin)"}
_CLOUD = "use a cloud backend (CELLBOX_BASE_URL and CELLBOX_API_KEY for OpenAI, CELLBOX_OCI_REGION for OCI)"


def _linux() -> bool:
    return sys.platform.startswith("linux")


def missing() -> str | None:
    """Why containers can't be isolated here, as far as is known without running anything; None when they may be
    (bubblewrap may still fail to make a jail: the server's own check runs it)."""
    if not _linux():
        return f"it needs Linux (bubblewrap), and this is {_SYSTEMS.get(sys.platform, sys.platform)}"
    if shutil.which("bwrap") is None:
        return "bubblewrap is not installed"
    return None


def refusal(reason: str) -> str:
    """The one line that says why the local server can't isolate code here (`reason`) and the choices left."""
    if not _linux():
        choices = [_CLOUD, "run cellbox in a Linux VM or WSL2"]
    else:
        choices = (
            [] if shutil.which("bwrap") else ["install it (`sudo apt-get install bubblewrap` on Debian or Ubuntu)"]
        )
        choices += [
            _CLOUD,
            "for code you trust sent through the API only, run `cellbox serve --unsafe-no-isolation` (it isolates "
            "nothing, and %%container cells need a jail's /mnt/data)",
        ]
    said = ", ".join(choices[:-1]) + f", or {choices[-1]}"
    return f"the local server can't isolate code: {reason}. {said[0].upper()}{said[1:]}."
