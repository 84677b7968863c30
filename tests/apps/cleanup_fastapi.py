"""A FastAPI stream under to_wsgi whose generator's ``finally`` writes to $BRIDGE_MARKS.

The garbage collector is off in this process: the clean-up of a request whose
client left must come from reference counting alone (issue 13, item 5).
"""

from __future__ import annotations

import gc
import os
from collections.abc import Iterator

from fastapi import FastAPI
from fastapi.responses import StreamingResponse

import bridge

gc.disable()

app = FastAPI()


@app.get("/stream")
def stream() -> StreamingResponse:
    def parts() -> Iterator[bytes]:
        try:
            while True:
                yield b"x" * 65536
        finally:
            with open(os.environ["BRIDGE_MARKS"], "a") as marks:
                marks.write("finally\n")

    return StreamingResponse(parts(), media_type="application/octet-stream")


wsgi = bridge.to_wsgi(app)
