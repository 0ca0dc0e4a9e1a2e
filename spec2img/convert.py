"""Convert a folder of clips into spectrogram images, a manifest and the config beside them.

One clip is rendered in memory by :mod:`spec2img.render` (the path prediction uses too);
:func:`convert` adds the folder walk, labels, parallel workers, resumability (images stamped with
the config digest are skipped when up to date) and the manifest.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from . import audio, engine_local, io
from .config import CONFIG_NAME, SpectrogramConfig
from .errors import AudioError, OutputError, Spec2ImgError, output_error
from .labels import ClipLabels, _hashed, _plain, folder_labels, folder_names, group_from_name, read_labels_csv
from .lock import FolderLock
from .manifest import write_manifest, write_run_info
from .paths import AUDIO_LIKE, walk_audio
from .progress import Progress
from .render import clip_windows, iter_images

log = logging.getLogger(__name__)

# errno values that mean "the output cannot be written": stop the run, keep the manifest.
OUTPUT_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EFBIG, errno.EPERM}

ENGINES = ("local", "ray")  # local: -j N processes (spec2img.engine_local); ray: spec2img.engine_ray


# ------------------------------------------------------------------------------ the folder job
@dataclass(frozen=True)
class ClipJob:
    source: Path  # absolute
    rel: str  # relative to the audio folder, posix
    stem: str  # output path relative to the images folder, without '.png'
    labels: ClipLabels | None


@dataclass
class ConvertSummary:
    converted: int = 0
    up_to_date: int = 0
    failed: int = 0
    skipped: int = 0
    images: int = 0
    seconds: float = 0.0
    manifest: Path | None = None
    rows: list[dict] = field(default_factory=list)

    @property
    def total(self) -> int:
        return self.converted + self.up_to_date + self.failed + self.skipped

    def line(self) -> str:
        rate = self.converted / self.seconds if self.seconds > 0 else 0.0
        return (
            f"{self.converted} converted, {self.up_to_date} up to date, {self.failed} failed, "
            f"{self.skipped} skipped ({self.total} clips, {self.images} images, "
            f"{self.seconds:.1f} s, {rate:.1f} clips/s)"
        )


def plan(audio_dir: Path, *, labels_csv: Path | None = None, file_col=None, label_col=None,
         fold_col=None, group_col=None, group_regex: str | None = None, missing: str = "error",
         follow_symlinks: bool = False) -> tuple[list[ClipJob], list[dict]]:
    """Decide every output path up front (so names never depend on processing order).

    Returns the jobs and the manifest rows of every other audio-looking entry: refused by the
    rules of :func:`spec2img.paths.walk_audio` (links, hidden, special files, unsupported formats)
    or skipped for want of a label. Output names never come from a label or a file name as it is:
    :func:`spec2img.labels.folder_names` maps them to safe, unique names. ``group_col`` /
    ``group_regex``: the manifest's ``group`` (recording, speaker) from a CSV column or from each file
    name (:func:`spec2img.labels.group_from_name`); ``missing``: see :func:`spec2img.labels.read_labels_csv`.
    """
    audio_dir = Path(audio_dir)
    if not audio_dir.is_dir():
        raise Spec2ImgError(f"{audio_dir}: not a folder; give the folder that holds your audio clips")
    entries = walk_audio(audio_dir, follow_symlinks=follow_symlinks)
    files = [e.path for e in entries if e.ok]
    if not entries:
        raise Spec2ImgError(
            f"{audio_dir}: no audio files found (looked for {', '.join(sorted(AUDIO_LIKE))})"
        )
    if not files:
        raise Spec2ImgError(f"{audio_dir}: none of its {len(entries)} audio-looking entries can be read "
                            f"(e.g. {entries[0].error})")
    if labels_csv is not None:
        labels = read_labels_csv(labels_csv, audio_dir, [e.path for e in entries], file_col=file_col,
                                 label_col=label_col, fold_col=fold_col, group_col=group_col, missing=missing)
    else:
        if group_col is not None:
            raise Spec2ImgError(f"--group-col {group_col} needs --labels CSV; without a CSV use --group-from-name REGEX")
        labels = folder_labels(audio_dir, files)
    if group_regex is not None:
        labels = group_from_name(labels, group_regex)

    jobs, skipped = [], []
    for e in entries:
        if not e.ok:
            skipped.append(_row(e.rel, labels.get(e.path.relative_to(audio_dir)), status=e.status, error=e.error))
    rels = [f.relative_to(audio_dir) for f in files]
    if labels_csv is not None:
        dirs = folder_names(lab.labels[0] for lab in labels.values())
    else:
        dirs = folder_names(part for rel in rels for part in rel.parts[:-1])
    wanted: dict[str, list[tuple[Path, ClipLabels | None, str]]] = {}
    for rel in rels:
        lab = labels.get(rel)
        if labels_csv is not None and lab is None:
            skipped.append(_row(rel.as_posix(), None, status="skipped",
                                error=f"not listed in {Path(labels_csv).name}"))
            continue
        folder = dirs[lab.labels[0]] if labels_csv is not None else "/".join(dirs[p] for p in rel.parts[:-1])
        base = f"{folder}/{_name(rel.stem)}" if folder else _name(rel.stem)
        wanted.setdefault(_fold(base), []).append((rel, lab, folder))
    for items in wanted.values():
        for rel, lab, folder in items:
            name = _name(rel.stem)
            if len(items) > 1:  # two clips would share a name: spell out the source path
                name = _hashed(rel.as_posix())
            jobs.append(ClipJob(audio_dir / rel, rel.as_posix(), f"{folder}/{name}" if folder else name, lab))
    jobs.sort(key=lambda j: j.rel)
    if labels_csv is not None and not jobs:
        raise Spec2ImgError(f"{labels_csv}: labels none of the {len(files)} audio files under {audio_dir}")
    return jobs, skipped


def _name(stem: str) -> str:
    """A file stem as an output name: itself when plain, else a slug with a hash (never a path)."""
    return stem if _plain(stem) else _hashed(stem)


def _fold(name: str) -> str:
    """The key under which two output names collide on a case-insensitive, normalising file system."""
    import unicodedata

    return unicodedata.normalize("NFKC", name).casefold()


def image_names(job: ClipJob, n_windows: int, cfg: SpectrogramConfig) -> list[str]:
    if cfg.tile is None:
        return [f"{job.stem}.png"]
    return [f"{job.stem}.t{k:04d}.png" for k in range(n_windows)]


def process(job: ClipJob, cfg: SpectrogramConfig, images_dir: Path) -> dict:
    """Render one clip to PNGs unless they are up to date; return its manifest row."""
    try:
        info = audio.probe(job.source)
        wins = clip_windows(info, cfg, key=job.rel)
        names = image_names(job, len(wins), cfg)
        offsets = [s / cfg.sr for s, _ in wins]
        base = dict(info=info, images=names, offsets=offsets)
        if _up_to_date(job.source, [images_dir / n for n in names], cfg.digest()):
            return _row(job.rel, job.labels, status="ok", cached=True, **base)
        digest = cfg.digest()
        written = 0
        for (_, img), name in zip(iter_images(job.source, cfg, key=job.rel, info=info), names):
            data = io.encode_png(img, digest=digest)
            try:
                io.write_atomic(images_dir / name, data)
            except OSError as exc:
                if exc.errno not in OUTPUT_ERRNOS:
                    raise
                row = _row(job.rel, job.labels, status="skipped", error="not written: " + output_error(exc))
                return {**row, "_fatal": output_error(exc, images_dir / name), "_written": written}
            written += len(data)
        return {**_row(job.rel, job.labels, status="ok", **base), "_written": written}
    except AudioError as exc:
        return _row(job.rel, job.labels, status="failed", error=str(exc))
    except Exception as exc:  # a decoder or resampler choking on one odd file must not sink the run
        log.debug("unexpected error on %s", job.source, exc_info=True)
        return _row(job.rel, job.labels, status="failed",
                    error=f"{job.source}: unexpected {type(exc).__name__}: {exc}")


def convert(
    audio_dir: Path,
    images_dir: Path,
    cfg: SpectrogramConfig,
    *,
    labels_csv: Path | None = None,
    file_col: str | None = None,
    label_col: str | None = None,
    fold_col: str | None = None,
    group_col: str | None = None,
    group_regex: str | None = None,
    missing: str = "error",
    jobs: int | None = None,
    strict: bool = False,
    progress: bool | None = None,
    engine: str = "local",
    address: str | None = None,
    follow_symlinks: bool = False,
    wait: bool = False,
) -> ConvertSummary:
    """Convert every clip under ``audio_dir`` into ``images_dir``; see the module docstring.

    ``engine="ray"`` fans the same per-clip work out over Ray (:mod:`spec2img.engine_ray`; the
    cluster at ``address``, else a local instance with ``jobs`` CPUs) instead of a process pool.
    ``group_col``, ``group_regex``, ``missing``: where the manifest's ``group`` comes from and what
    a CSV row naming an absent file does (:func:`plan`).

    ``images_dir`` is locked for the run (:class:`spec2img.lock.FolderLock`; ``wait``: queue behind
    another run instead of refusing). ``spec2img_run.json`` says ``complete: false`` until the
    manifest and images agree. A full disk (or any write refused) stops the run with
    :class:`OutputError` naming the path and what was written; the manifest of what was done is kept.
    """
    if engine not in ENGINES:
        raise Spec2ImgError(f"--engine {engine!r}: choose one of {', '.join(ENGINES)}")
    t0 = time.perf_counter()
    audio_dir, images_dir = Path(audio_dir), Path(images_dir)
    if images_dir.resolve() == audio_dir.resolve():
        raise Spec2ImgError("IMAGES_DIR must differ from AUDIO_DIR; give a new folder for the images")
    if images_dir.exists() and not images_dir.is_dir():
        raise OutputError(f"{images_dir}: a file, not a folder; give a folder for the images "
                          "(it is created when missing)")
    todo, skipped_rows = plan(audio_dir, labels_csv=labels_csv, file_col=file_col, label_col=label_col,
                              fold_col=fold_col, group_col=group_col, group_regex=group_regex, missing=missing,
                              follow_symlinks=follow_symlinks)
    try:
        images_dir.mkdir(parents=True, exist_ok=True)
        lock = FolderLock(images_dir, wait=wait).acquire()
    except OSError as exc:
        raise OutputError(output_error(exc, images_dir)) from None
    try:
        return _convert_locked(audio_dir, images_dir, cfg, todo, skipped_rows, labels_csv=labels_csv,
                               jobs=jobs, strict=strict, progress=progress, engine=engine, address=address,
                               t0=t0)
    finally:
        lock.release()


def _convert_locked(audio_dir: Path, images_dir: Path, cfg: SpectrogramConfig, todo: list[ClipJob],
                    skipped_rows: list[dict], *, labels_csv, jobs, strict, progress, engine, address,
                    t0: float) -> ConvertSummary:
    try:
        for tmp in images_dir.rglob(".*.png.*.tmp"):  # left by a run killed mid-write
            tmp.unlink(missing_ok=True)
        _note_config_change(images_dir, cfg)
        run_info = {"audio_dir": str(audio_dir.resolve()),
                    "labels_csv": str(Path(labels_csv).resolve()) if labels_csv else None,
                    "digest": cfg.digest()}
        write_run_info(images_dir, {**run_info, "complete": False})  # first: classify refuses until done
        cfg.save(images_dir)
    except OSError as exc:
        raise OutputError(output_error(exc, images_dir)) from None

    summary = ConvertSummary(skipped=sum(r["status"] == "skipped" for r in skipped_rows),
                             failed=sum(r["status"] == "failed" for r in skipped_rows))
    rows = list(skipped_rows)
    for r in skipped_rows:  # every failed row gets its line, found by the walk or by decoding
        if r["status"] == "failed":
            log.warning("failed: %s", r["error"])
    n_jobs = max(1, min(jobs or os.cpu_count() or 1, len(todo)))
    bar = Progress(len(todo), unit="clip", desc="spec2img", enabled=progress, logger=log)
    fatal, written, results = None, 0, None
    try:  # from here on a stop (Ctrl-C while the workers start, too) still writes the manifest
        if engine == "ray":  # the seam: only the fan-out differs from -j
            from .engine_ray import run_jobs

            results = run_jobs(todo, _Task(cfg, images_dir), lost=_lost_row, init=engine_local.init_worker,
                               jobs=jobs, address=address)
        else:
            results = engine_local.run_jobs(todo, _Task(cfg, images_dir), n_jobs, lost=_lost_row)
        for row in results:
            written += row.pop("_written", 0)
            if row.get("_fatal"):  # the disk is full (or writes are refused): stop, keep what was done
                fatal = row["_fatal"]
                break
            rows.append(row)
            bar.update()
            if row["status"] == "failed":
                summary.failed += 1
                log.warning("failed: %s", row["error"])
                if strict:
                    raise AudioError(row["error"] + " (--strict: stopped at the first failure)")
            elif row.pop("cached", False):
                summary.up_to_date += 1
            else:
                summary.converted += 1
            summary.images += len(row["images"])
    finally:
        if results is not None:
            engine_local.close(results)
        bar.close()
        done = {r["source"] for r in rows}
        complete = all(j.rel in done for j in todo)
        rows += [_row(j.rel, j.labels, status="skipped", error="not processed: the run stopped early")
                 for j in todo if j.rel not in done]
        for r in rows:
            r.pop("cached", None)
        rows.sort(key=lambda r: r["source"])
        summary.rows = rows
        summary.seconds = time.perf_counter() - t0
        try:
            with _interrupt_after():  # a Ctrl-C now would lose the manifest of what was done
                summary.manifest = write_manifest(rows, images_dir)
                if complete:
                    _remove_stale(images_dir, rows)
                    write_run_info(images_dir, {**run_info, "complete": True})
        except OSError as exc:
            if exc.errno not in OUTPUT_ERRNOS:
                raise
            fatal = fatal or output_error(exc, images_dir / "manifest.csv")  # the error line says what is kept
    if fatal:
        manifest = images_dir / "manifest.csv"
        where = (f"listed in {manifest}" if summary.manifest is not None else
                 f"kept; the previous {manifest.name} is kept too" if manifest.is_file() else
                 f"kept, but no {manifest.name} could be written")
        raise OutputError(f"{fatal}; {written / 2**20:.1f} MB in {summary.converted} clip(s) written before it "
                          f"stopped, {where}; free space (or make it writable) and rerun the same command to "
                          "resume")
    return summary


# ------------------------------------------------------------------------------ helpers
@contextlib.contextmanager
def _interrupt_after():
    """Hold a Ctrl-C (SIGINT) that arrives inside the block and raise it when the block ends, so
    the manifest is always written whole (main thread only; elsewhere the block runs as is)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: caught.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if caught:
        raise KeyboardInterrupt



class _Task:
    """:func:`process` with the run's settings bound: the picklable per-clip job both engines run."""

    def __init__(self, cfg, images_dir):
        self.cfg, self.images_dir = cfg, images_dir

    def __call__(self, job):
        return process(job, self.cfg, self.images_dir)


def _lost_row(job: ClipJob, message: str) -> dict:
    """The manifest row of a clip whose worker process (-j) or Ray worker died with it."""
    return _row(job.rel, job.labels, status="failed", error=f"{job.source}: {message}")


def _up_to_date(source: Path, images: list[Path], digest: str) -> bool:
    try:
        src_mtime = source.stat().st_mtime
        return all(p.stat().st_mtime >= src_mtime and io.png_digest(p) == digest for p in images)
    except FileNotFoundError:
        return False


def _remove_stale(images_dir: Path, rows: list[dict]) -> None:
    """Delete PNGs that an earlier run of spec2img made (they carry its stamp) and that the
    manifest no longer lists, e.g. tiles of a previous --tile setting. Other files are left alone."""
    keep = {images_dir / img for r in rows for img in r["images"]}
    stale = [p for p in images_dir.rglob("*.png") if p not in keep and io.png_digest(p) is not None]
    for p in stale:
        p.unlink(missing_ok=True)
    if stale:
        log.info("removed %d images of earlier settings that the manifest no longer lists", len(stale))


def _note_config_change(images_dir: Path, cfg: SpectrogramConfig) -> None:
    old = images_dir / CONFIG_NAME
    if old.exists():
        try:
            if SpectrogramConfig.load(old) != cfg:
                log.info("spectrogram settings changed since the last run: re-rendering every image")
        except Spec2ImgError:
            log.info("%s unreadable: re-rendering every image", old)


def _row(source: str, lab: ClipLabels | None, *, status: str, error: str = "", info=None,
         images=(), offsets=(), cached: bool = False) -> dict:
    row = {
        "source": source,
        "images": list(images),
        "offsets": list(offsets),
        "labels": list(lab.labels) if lab else [],
        "fold": lab.fold if lab and lab.fold is not None else "",
        "group": (lab.group if lab and lab.group else source),
        "manually_verified": "" if not lab or lab.verified is None else int(lab.verified),
        "duration": round(info.duration, 4) if info else "",
        "orig_sr": info.samplerate if info else "",
        "channels": info.channels if info else "",
        "status": status,
        "error": error,
    }
    if cached:
        row["cached"] = True
    return row

