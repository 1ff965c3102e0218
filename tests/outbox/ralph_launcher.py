"""Starts Ralph's LRS API with uvicorn; run by the Python of Ralph's own virtualenv.

    python ralph_launcher.py PORT

Ralph 5.1.0's file-system backend writes with the operation type ``create`` unless
told otherwise, and ``create`` refuses a target file that already exists: every
write after the first would fail with a 500. Setting the LRS backend's default
operation type to ``append`` before the app is imported makes it add to the file,
as an LRS must. Nothing else of Ralph is changed.
"""

import sys

import uvicorn
from ralph.backends.data.base import BaseOperationType
from ralph.backends.lrs.fs import FSLRSBackend

FSLRSBackend.default_operation_type = BaseOperationType.APPEND

if __name__ == "__main__":
    uvicorn.run(
        "ralph.api:app",
        host="127.0.0.1",
        port=int(sys.argv[1]),
        log_level="warning",
        access_log=False,
    )
