"""One exception base for the package; the CLI maps it to a one-line message and exit code 2
(:class:`spec2img.exitcodes.ExitCode`)."""


class Spec2ImgError(Exception):
    """Base of every error a user can cause (bad file, bad flag, bad CSV).

    Messages name the offending file or value and say what would work.
    """


class ConfigError(Spec2ImgError, ValueError):
    """A spectrogram parameter is out of range or inconsistent."""


class AudioError(Spec2ImgError):
    """An audio file cannot be decoded or holds no usable signal."""


class LabelsError(Spec2ImgError):
    """A labels CSV is missing columns, names missing files, or cannot be parsed."""


class LockError(Spec2ImgError):
    """A folder is being written by another run (the message names the holder)."""


class OutputError(Spec2ImgError):
    """An output cannot be written: disk full, read-only folder, a file where a folder should be."""


def output_error(exc: OSError, path=None) -> str:
    """One line for an OSError met while writing: which path, what is wrong."""
    import errno

    where = exc.filename or path
    what = {errno.ENOSPC: "disk full", errno.EDQUOT: "disk quota exceeded", errno.EFBIG: "file too large",
            errno.EROFS: "read-only file system", errno.EACCES: "permission denied (a read-only folder?)",
            errno.EPERM: "permission denied", errno.ENOTDIR: "part of the path is a file, not a folder",
            errno.EEXIST: "a file is in the way of a folder"}.get(exc.errno)
    return f"{where}: cannot write ({what})" if what else f"{where}: {exc.strerror or exc}"
