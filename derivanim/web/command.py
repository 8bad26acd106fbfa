"""`derivanim serve`: its arguments and what it runs (the web stack is imported only when it is)."""

import argparse

SERVE_EXAMPLES = """examples:
  derivanim serve                                  http://127.0.0.1:8000, data in ./derivanim-data
  derivanim serve --host 0.0.0.0 --port 8080 --workers 2
  derivanim serve --data ~/derivanim --prune 500   remove the oldest gallery videos until the folder holds 500 MB
"""


def add_serve_command(commands) -> None:
    serve = commands.add_parser(
        "serve", help="a local web page: type a function or a request, watch the video render",
        description="Serve the derivanim page and its JSON API. Renders run in worker processes; the jobs and the "
                    "gallery of videos made before are kept in the data folder across restarts.",
        epilog=SERVE_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine "
                                                          "only; 0.0.0.0 lets others on the network in)")
    serve.add_argument("--port", type=int, default=8000, help="default 8000")
    serve.add_argument("--data", default="derivanim-data", metavar="DIR",
                       help="jobs database and gallery of videos (default ./derivanim-data)")
    serve.add_argument("--workers", type=int, default=1, metavar="N",
                       help="render worker processes, each rendering one video at a time (default 1); one more "
                            "process fills slots, so a request's slots show while videos render")
    serve.add_argument("--jobs", type=int, default=1, metavar="N",
                       help="Manim processes rendering each video at once, as derivanim make --jobs (default 1: on "
                            "2 cores it pays only at 720p and above)")
    serve.add_argument("--max-queue", type=int, default=20, metavar="N",
                       help="animations waiting or rendering at once; beyond it a request gets HTTP 429 (default 20)")
    serve.add_argument("--max-request", type=int, default=500, metavar="CHARS",
                       help="longest request accepted, in characters (default 500)")
    serve.add_argument("--render-timeout", type=float, default=600.0, metavar="SECONDS",
                       help="time limit of one render (default 600)")
    serve.add_argument("--prune", type=float, default=None, metavar="MB",
                       help="do not serve: remove the oldest gallery videos until the data folder holds at most MB "
                            "megabytes, then exit")
    serve.set_defaults(run=run_serve)


def run_serve(args) -> int:
    from derivanim.errors import InvalidInput

    if min(args.workers, args.jobs, args.max_queue, args.max_request) < 1 or args.render_timeout <= 0:
        raise InvalidInput("serve: --workers, --jobs, --max-queue, --max-request and --render-timeout must be positive")
    if args.prune is not None:
        from derivanim.web.store import JobStore, folder_bytes

        store = JobStore(args.data)
        removed = store.prune(int(args.prune * 1e6))
        print(f"removed {len(removed)} gallery videos; {args.data} holds {folder_bytes(store.data) / 1e6:.1f} MB")
        return 0

    import uvicorn

    from derivanim.web.app import Limits, create_app

    limits = Limits(max_request=args.max_request, max_queue=args.max_queue, render_seconds=args.render_timeout)
    app = create_app(args.data, renderers=args.workers, limits=limits, jobs=args.jobs)
    print(f"derivanim: serving http://{args.host}:{args.port} (data in {args.data}; Ctrl-C stops)", flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    return 0
