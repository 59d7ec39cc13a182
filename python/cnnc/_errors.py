"""The exceptions of the package and the statuses of the C API (include/cnnc/model.h)."""

import collections
import enum
import re


class Status(enum.IntEnum):
    """cnn_status."""

    OK = 0
    INVALID_ARGUMENT = 1
    SIZE_MISMATCH = 2
    OUT_OF_MEMORY = 3
    THREADS = 4
    DEVICE = 5
    VERSION = 6
    BUSY = 7
    CORRUPT = 8


class CnncError(Exception):
    """Every error of the package. `status` is the C API's status (a Status) when the
    error has one, else None; `detail` is what cnn_last_error() said after the failing
    call ("" when it said nothing more, or when the error was found before any call)."""

    def __init__(self, message, status=None, detail=""):
        super().__init__(message)
        self.status = status
        self.detail = detail


class ShapeError(CnncError, ValueError):
    """An input whose shape is not the model's (or, from the C API, whose size is not)."""


class DtypeError(CnncError, TypeError):
    """An input that is not float32."""


class ContiguityError(CnncError, ValueError):
    """An input that is not C-contiguous (pass np.ascontiguousarray(x))."""


class InputError(CnncError, ValueError):
    """Inputs missing, unknown or too many for the model."""


class ClosedError(CnncError, RuntimeError):
    """A call on a model after close()."""


class LoadError(CnncError, OSError):
    """A file that cannot be loaded as a model.so."""


class DeviceError(CnncError):
    """The device asked for is missing, failed, or is not the model's."""


class BusyError(CnncError):
    """The instance was running on another thread (the package serializes the calls it
    makes, so this comes only from a caller sharing the instance some other way)."""


class CorruptError(CnncError):
    """The weights are not those the model was compiled with (Model.verify)."""


class VersionError(CnncError):
    """The model.so was built against another version of the C API."""


class OutOfMemoryError(CnncError, MemoryError):
    pass


class Diagnostic(collections.namedtuple("Diagnostic", "file line col severity message")):
    """One message of cnnc: file, line and col (None when not given: `cnnc: error: ...`
    names only the program, `FILE: error: ...` only the file), severity, message."""

    __slots__ = ()
    _PATTERN = re.compile(r"^(?P<loc>.*?): (?P<sev>error|warning|note): (?P<msg>.*)$")
    _LOC = re.compile(r"^(?P<file>.*?)(?::(?P<line>\d+)(?::(?P<col>\d+))?)?$")

    @classmethod
    def parse(cls, text):
        """The diagnostics among the lines of `text` (source lines and carets skipped)."""
        out = []
        for line in text.splitlines():
            m = cls._PATTERN.match(line)
            if not m:
                continue
            loc = cls._LOC.match(m.group("loc"))
            num = lambda g: int(loc.group(g)) if loc.group(g) else None
            out.append(cls(loc.group("file"), num("line"), num("col"), m.group("sev"),
                           m.group("msg")))
        return out

    def __str__(self):
        where = ":".join(str(p) for p in (self.file, self.line, self.col) if p is not None)
        return "%s: %s: %s" % (where, self.severity, self.message)


class CompileError(CnncError):
    """cnnc failed. `messages`: its errors (Diagnostics, each with file, line, col,
    message); `diagnostics`: all its messages, warnings and notes too; `returncode`: its
    exit status; `stderr`: what it printed; `command`: the command line."""

    def __init__(self, command, returncode, stderr):
        self.command = command
        self.returncode = returncode
        self.stderr = stderr
        self.diagnostics = Diagnostic.parse(stderr)
        self.messages = [d for d in self.diagnostics if d.severity == "error"]
        text = stderr.rstrip() or "(no message)"
        super().__init__("cnnc failed with exit status %d:\n%s" % (returncode, text))


# The class of the exception raised for each status of a failing C API call.
STATUS_ERRORS = {
    Status.SIZE_MISMATCH: ShapeError,
    Status.OUT_OF_MEMORY: OutOfMemoryError,
    Status.DEVICE: DeviceError,
    Status.VERSION: VersionError,
    Status.BUSY: BusyError,
    Status.CORRUPT: CorruptError,
}
