"""What a `render_sequence` run did (`RenderSummary`): frames done, skipped, failed or left without a face and why,
as the lines the CLI and the add-on show."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from .edit.subject import PHOTOGRAPH_NOTE
from .errors import shown
from .imageio import describe_unread
from .sequence.frame_range import describe_numbers


@dataclass
class RenderSummary:
    total: int = 0
    done: int = 0
    skipped: int = 0
    failed: list[tuple[Path, str]] = field(default_factory=list)
    no_face: list[Path] = field(default_factory=list)  # every frame written unchanged for want of a face
    marked_no_face: list[Path] = field(default_factory=list)  # of those, the frames faces.json marks `[]`
    off_picture: list[Path] = field(default_factory=list)  # of those, frames whose given boxes lie off the picture
    unread: list[Path] = field(default_factory=list)  # images in formats not read, left out of the sequence
    subfolders: list[Path] = field(default_factory=list)  # folders in the frames folder: their frames are not read
    faces_file: Path | None = None
    unlisted: list[str] = field(default_factory=list)  # frames the faces file says nothing of (located otherwise)
    unused_keys: list[str] = field(default_factory=list)  # the faces file's keys when none names a frame
    cancelled: bool = False
    backend: str = ""
    precision: str = ""  # the network's precision as it ran ("fp32", "fp16")
    numerical_failures: int = 0  # frames whose network output was NaN/inf (fp16 overflow)
    non_finite: list[Path] = field(default_factory=list)  # frames with NaN/inf pixels in a face, kept as they were
    photographs: int = 0  # frames whose faces read as photographs of people (--subject auto) and took their gains
    frame_range: str = ""  # the --frame-range this run rendered ("" for a shard)
    missing_frames: list[int] = field(default_factory=list)  # numbers the frame range names that no frame has

    @property
    def ok(self) -> bool:
        return not (self.failed or self.no_face or self.cancelled)

    def lines(self) -> list[str]:
        """The summary, a line each; file names escaped where they hold a newline or a terminal escape."""
        head = (
            f"{self.done} done, {self.skipped} skipped (existing), {len(self.failed)} failed, "
            f"{len(self.no_face)} without a face, of {self.total} frames"
        )
        faces_file = shown(self.faces_file) if self.faces_file else ""
        return (
            [head + (" (cancelled)" if self.cancelled else "")]
            + ([f"left out: {describe_unread(self.unread)}"] if self.unread else [])
            + ([f"left out: {len(self.subfolders)} subfolder{'s' * (len(self.subfolders) != 1)} (e.g. "
                f"{shown(self.subfolders[0].name)}/): frames are read from the folder itself, not from folders in "
                "it"] if self.subfolders else [])
            + ([f"--frame-range {self.frame_range}: no frame numbered {describe_numbers(self.missing_frames)} in the "
                "folder (the frames that are were rendered)"] if self.missing_frames else [])
            + ([f"{faces_file}: no entry for {len(self.unlisted)} frame{'s' * (len(self.unlisted) != 1)} (e.g. "
                f"{shown(self.unlisted[0])}): located as without a faces file"] if self.unlisted else [])
            + ([f"{faces_file}: no key names a frame of the folder: {self.unused_keys[0]!r}"
                + (f" and {len(self.unused_keys) - 1} more" if len(self.unused_keys) > 1 else "")
                + " (a key is a frame's name, file name or stem)"] if self.unused_keys else [])
            + [f"failed: {shown(path)}: {' '.join(reason.split()) if reason.isprintable() else shown(reason)}"
               for path, reason in self.failed]
            + [self._no_face_line(path) for path in self.no_face]
            + ([f"{len(self.non_finite)} frame{'s' * (len(self.non_finite) != 1)} with NaN or inf pixels in a face "
                f"(e.g. {shown(self.non_finite[0])}): edited around them, those pixels written as they were"]
               if self.non_finite else [])
            + ([f"{self.photographs} frame{'s' * (self.photographs != 1)} read as photographs of people: "
                f"{PHOTOGRAPH_NOTE}"] if self.photographs else [])
        )


    def _no_face_line(self, path: Path) -> str:
        if path in self.marked_no_face:
            return f"no face: {shown(path)} ({shown(self.faces_file or 'faces.json')} marks it [], without a face; " \
                   "written unchanged)"
        if path in self.off_picture:
            return f"no face found: {shown(path)} (written unchanged; the face box given lies wholly off the picture)"
        return f"no face found: {shown(path)} (written unchanged; give --faces or --region)"
