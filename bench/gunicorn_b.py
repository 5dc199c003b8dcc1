"""funker-dispatch's app under gunicorn's gthread worker, as `serve` ran it before granian.

Only for bench/servers.py's side-by-side comparison: the same `create_app`
from the same config, with the options the old `funker_dispatch/server/serve.py` gave
gunicorn (gthread, preload_app, keepalive 5, timeout 30), and the
multiprocess metrics and request log set up as `serve()` sets them up.

Run: python bench/gunicorn_b.py --config dispatch.toml --port 3002
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bare import BareServer

from funker_dispatch.server.serve import configure_logging
from skill.observability import prepare_multiprocess
from skill.settings import load_settings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=8)
    args = parser.parse_args()
    configure_logging()
    prepare_multiprocess()  # before prometheus_client is imported
    from skill.app import create_app

    app = create_app(load_settings(args.config, environ={}))
    BareServer(app, args.port, args.workers, args.threads).run()


if __name__ == "__main__":
    main()
