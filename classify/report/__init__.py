"""Static HTML interpretation report of a ``classify fit`` / ``cv`` run folder.

``build_report(run_dir) -> Path`` writes ``run_dir/report/index.html`` plus thumbnails, audio and
plots beside it; the folder opens from disk with no network and can be zipped and moved.
"""

from .build import ReportConfig, build_report

__all__ = ["ReportConfig", "build_report"]
