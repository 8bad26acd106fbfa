"""The command line: a thin layer over the library. Exit 0 success, 2 invalid input, 1 anything else."""

import argparse
import json
import os
import sys
from pathlib import Path

from rich.console import Console
from rich.markup import escape

from derivanim.errors import DerivanimError, InvalidInput

stderr = Console(stderr=True, highlight=False)

MAKE_EXAMPLES = """examples:
  derivanim make "sin(x^2)"                        scene + 720p video in ./out
  derivanim make "x^2*e^(-x)" --quality h -o out/ --format gif
  derivanim make "ln(x)" --no-render               only the .py
  derivanim make "tan(x)" --json                   slots, derivative, paths, repairs as JSON
  derivanim make "g(t) = t^3 - 2t"                 another name and variable
  derivanim make "Teach the product rule with x*sin(x)" --filler model
"""


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line and exit code 2 like any other invalid input."""

    def error(self, message):
        raise InvalidInput(f"{self.prog}: {message}")


def _make(args) -> int:
    from derivanim.api import fill
    from derivanim.render import open_file

    animation = fill(args.request, filler=args.filler)
    out_dir = Path(args.output)
    scene_path = animation.save(out_dir / f"{args.name}.py")
    video_path = None
    if not args.no_render:
        with stderr.status(f"Rendering {args.name} at quality {args.quality} ...") as status:
            def progress(count: int) -> None:
                status.update(f"Rendering {args.name} at quality {args.quality}: animation {count} done")

            video_path = animation.render(out_dir, quality=args.quality, fmt=args.format, name=args.name,
                                          on_animation=None if args.json else progress)
        if args.preview:
            open_file(video_path)
    if args.json:
        print(json.dumps({**animation.to_dict(), "scene": str(scene_path),
                          "video": None if video_path is None else str(video_path)}, indent=2))
    else:
        for repair in animation.repairs:
            stderr.print(f"[yellow]repaired:[/] {escape(repair)}")
        print(f"{animation.plan.name}'({animation.plan.variable}) = {animation.derivative}")
        print(f"scene: {scene_path}")
        if video_path is not None:
            print(f"video: {video_path}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="derivanim",
        description="Verified Manim animations that explain the derivative of a function, in eight phases.",
        epilog='Start with: derivanim make "sin(x^2)"',
    )
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    make = commands.add_parser(
        "make", help="write the scene for a function or request, and render it",
        description="Write the DerivativeVisualization scene for a function (or a request in words) and render it.",
        epilog=MAKE_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    make.add_argument("request", help='a function such as "sin(x^2)", or a request in words')
    make.add_argument("-o", "--output", default="out", help="folder for the scene and the video (default: out)")
    make.add_argument("--name", default="derivative", help="file name stem of the outputs (default: derivative)")
    make.add_argument("-q", "--quality", choices=["l", "m", "h", "k"], default="m",
                      help="480p15, 720p30 (default), 1080p60 or 2160p60")
    make.add_argument("--format", choices=["mp4", "gif"], default="mp4", help="video format (default: mp4)")
    make.add_argument("--filler", choices=["auto", "rules", "model"], default="auto",
                      help="who decides the slots: rules (SymPy), model, or auto (rules for a bare function)")
    make.add_argument("--no-render", action="store_true", help="write the .py only")
    make.add_argument("--preview", action="store_true", help="open the video when it is ready")
    make.add_argument("--json", action="store_true", help="print a machine-readable result")
    make.set_defaults(run=_make)
    return parser


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        return args.run(args)
    except DerivanimError as error:
        stderr.print(f"[red]error:[/] {escape(str(error))}", soft_wrap=True)
        return error.exit_code
    except KeyboardInterrupt:
        stderr.print("[red]interrupted[/]")
        return 130
    except Exception as error:  # a bug of ours: still one line, and the way to see the traceback
        if os.environ.get("DERIVANIM_DEBUG"):
            raise
        stderr.print(f"[red]error:[/] {escape(type(error).__name__)}: {escape(str(error))} "
                     "(set DERIVANIM_DEBUG=1 for the traceback)", soft_wrap=True)
        return 1


if __name__ == "__main__":
    sys.exit(main())
