"""`stylecbn serve`: a local web page to mix styles on a photo and paint where they go.

`create_app(stylizer)` builds the ASGI app (Starlette); `stylecbn.cli.serve` runs it
with uvicorn, set up by `stylecbn.serve.server.server_config` (bounded connections, read
deadlines). Needs the web extra: `pip install -e ".[web]"` in a clone.
"""

from stylecbn.serve.app import PREVIEW_SIZE, create_app
from stylecbn.serve.uploads import UploadLimits

__all__ = ["create_app", "UploadLimits", "PREVIEW_SIZE"]
