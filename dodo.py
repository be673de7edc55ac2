"""doit entry of this repository: `doit deploy name=frontend env=test` (see README.md)."""
from copilot_doit.tasks import *  # noqa: F401,F403  (task_* creators and DOIT_CONFIG)
