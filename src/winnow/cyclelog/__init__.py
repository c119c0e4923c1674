"""winnow.cyclelog: the autopilot's cycle records, one owner for writing and reading them.

``record.py`` writes and reads ``<home>/lifecycle/cycles/<cycle>.json`` (winnow.lifecycle, the
autopilot, is the only writer); ``status.py`` turns the records into the status data that
``winnow autopilot status`` prints and ``GET /v1/admin/autopilot`` answers (one implementation).
It sits below serving so a serving process can READ the records without importing the
lifecycle package (training never runs in a serving process).
"""
