"""The run's human reports: `report.md` (CI summaries) and a self-contained `report.html` (charts as inline SVG).

inputs.py reads a run record (local or s3://) and tolerates missing parts; facts.py derives what every view
shows (gate order, top deltas, forest rows); markdown.py, html.py and charts.py render; render.py writes both
files and never lets a rendering error fail the record step; compare.py contrasts two runs.
"""
