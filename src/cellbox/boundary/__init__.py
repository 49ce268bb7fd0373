"""The trust boundary: everything a container sends back is untrusted input, checked here before the notebook's
side acts on it. `record` accepts or refuses a run's result record; `display` makes what the container displays
safe to show in the user's page; `local_paths` decides where files from a container may land on the host."""

from .display import DisplayPolicy
from .record import RecordRefused

__all__ = ["DisplayPolicy", "RecordRefused"]
