"""Reports: self-contained HTML from stored runs (design section 9).

:func:`build_report` writes one HTML file with inline CSS and inline SVG
figures and no network reference; :func:`render_report` returns its text.
"""

from factorbench.reports.build import build_report, render_report

__all__ = ["build_report", "render_report"]
