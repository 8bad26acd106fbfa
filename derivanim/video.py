"""Videos after Manim: the pieces of a render in ranges joined, an MP4 converted to GIF or WebM frame by frame
(memory stays the same whatever the quality and length), and the scene's subtitles made to take turns."""

from collections.abc import Callable
from fractions import Fraction
from io import BytesIO
from pathlib import Path

import av
import srt

GIF_MAX_FPS = 15  # GIF frame delays are in 1/100 s and every frame is a full palette image: more is only bytes
GIF_MAX_WIDTH = 960
WEBM_OPTIONS = {"crf": "32", "b": "0", "deadline": "good", "cpu-used": "4", "row-mt": "1"}  # VP9, constant quality


def subtitles_in_turn(text: str) -> str:
    """The scene's subtitles with each one ending no later than the next begins (a phase shorter than its
    subtitle would otherwise show two at once)."""
    cues = sorted(srt.parse(text), key=lambda cue: cue.start)
    for cue, following in zip(cues, cues[1:]):
        cue.end = min(cue.end, following.start)
    return srt.compose(cues)


def join_videos(parts: list[Path], target: Path) -> Path:
    """Join MP4s of the same stream settings end to end without re-encoding (the packets copied, as Manim joins
    its partial movie files); returns `target`."""
    manifest = "".join(f"file 'file:{Path(part).resolve().as_posix()}'\n" for part in parts)
    with av.open(BytesIO(manifest.encode("utf-8")), format="concat", options={"safe": "0"}) as joined, \
            av.open(str(target), "w") as output:
        source = joined.streams.video[0]
        stream = output.add_stream_from_template(template=source)
        for packet in joined.demux(source):
            if packet.dts is None:  # the flushing packets demux ends with
                continue
            packet.dts = None  # each part's timestamps start again at 0: the muxer computes them anew
            packet.stream = stream
            output.mux(packet)
    return target


def convert_video(source: Path, target: Path, on_fraction: Callable[[float], None] | None = None) -> Path:
    """Convert an MP4 to `target`'s format (GIF or WebM), streaming frame by frame; returns `target`.

    GIF: at most GIF_MAX_FPS frames a second and GIF_MAX_WIDTH pixels wide, with one palette made for the whole
    video (a first pass collects its colours, a second maps every frame to them). WebM: VP9 at the video's size.
    `on_fraction` hears how much of the conversion is done, every 30 frames.
    """
    fmt = target.suffix[1:]
    with av.open(str(source)) as probe:
        stream = probe.streams.video[0]
        frames, rate, width = stream.frames, stream.average_rate, stream.width

    def progress(done: int, passes: int = 1, current: int = 1) -> None:
        if on_fraction is not None and frames:
            on_fraction(min(((current - 1) * frames + done) / (passes * frames), 1.0))

    if fmt == "gif":
        fps = Fraction(min(Fraction(rate), GIF_MAX_FPS))
        size = f"{min(width, GIF_MAX_WIDTH)}:-2:flags=lanczos"  # -2: the height that keeps the aspect, even
        palette = _gif_palette(source, fps, size, lambda done: progress(done, 2, 1))
        _write_gif(source, target, fps, size, palette, lambda done: progress(done, 2, 2))
    elif fmt == "webm":
        _write_webm(source, target, progress)
    else:
        raise ValueError(f"cannot convert to {fmt}")
    return target


def _frames(container, on_frame: Callable[[int], None]):
    """Decode a video's frames one at a time, calling on_frame(count) every so often."""
    stream = container.streams.video[0]
    stream.thread_type = "AUTO"
    for count, frame in enumerate(container.decode(stream), 1):
        if count % 30 == 0:
            on_frame(count)
        yield frame


def _filtered(source_node, frames, sink):
    """Push frames through a filter graph and yield what comes out, one at a time. Every push is followed by a
    pull: libavfilter runs only when asked for output, and until then it queues every frame pushed."""
    def drain():
        while True:
            try:
                yield sink.pull()
            except (BlockingIOError, EOFError):  # PyAV's EAGAIN (wants more input) and end of stream
                return

    for frame in frames:
        source_node.push(frame)
        yield from drain()
    source_node.push(None)
    yield from drain()


def _scaled_input(graph, template, fps: Fraction, size: str):
    """A filter graph input for the video's frames, at the GIF's frame rate and size: (input node, output node)."""
    source_node = graph.add_buffer(template=template)
    rate = graph.add("fps", f"fps={fps}")
    scale = graph.add("scale", size)
    source_node.link_to(rate)
    rate.link_to(scale)
    return source_node, scale


def _gif_palette(source: Path, fps: Fraction, size: str, on_frame: Callable[[int], None]):
    """One 256-colour palette for the whole video (palettegen keeps a histogram, not the frames)."""
    with av.open(str(source)) as container:
        template = container.streams.video[0]
        graph = av.filter.Graph()
        source_node, scaled = _scaled_input(graph, template, fps, size)
        palettegen, sink = graph.add("palettegen", "stats_mode=full"), graph.add("buffersink")
        scaled.link_to(palettegen)
        palettegen.link_to(sink)
        graph.configure()
        palettes = list(_filtered(source_node, _frames(container, on_frame), sink))
    return palettes[-1]


def _write_gif(source: Path, target: Path, fps: Fraction, size: str, palette, on_frame: Callable[[int], None]) -> None:
    with av.open(str(source)) as container, av.open(str(target), "w", format="gif") as output:
        template = container.streams.video[0]
        graph = av.filter.Graph()
        source_node, scaled = _scaled_input(graph, template, fps, size)
        palette_node = graph.add_buffer(width=palette.width, height=palette.height, format=palette.format,
                                        time_base=template.time_base)
        paletteuse, sink = graph.add("paletteuse", "dither=sierra2_4a:diff_mode=rectangle"), graph.add("buffersink")
        scaled.link_to(paletteuse, 0, 0)
        palette_node.link_to(paletteuse, 0, 1)
        paletteuse.link_to(sink)
        graph.configure()
        palette.pts = 0
        palette_node.push(palette)
        palette_node.push(None)  # one palette for every frame
        stream = output.add_stream("gif", rate=fps)
        stream.pix_fmt = "pal8"
        for index, frame in enumerate(_filtered(source_node, _frames(container, on_frame), sink)):
            if index == 0:
                stream.width, stream.height = frame.width, frame.height
            frame.pts, frame.time_base = index, 1 / fps
            output.mux(stream.encode(frame))
        output.mux(stream.encode(None))


def _write_webm(source: Path, target: Path, on_frame: Callable[[int], None]) -> None:
    with av.open(str(source)) as container, av.open(str(target), "w", format="webm") as output:
        template = container.streams.video[0]
        stream = output.add_stream("libvpx-vp9", rate=template.average_rate, options=WEBM_OPTIONS)
        stream.width, stream.height, stream.pix_fmt = template.width, template.height, "yuv420p"
        for frame in _frames(container, on_frame):
            output.mux(stream.encode(frame))
        output.mux(stream.encode(None))
