"""Moved to ``winnow.cyclelog.record`` (serving reads the records too, and sits below lifecycle);
re-exported here so code written against this path keeps importing."""

from winnow.cyclelog.record import (  # noqa: F401
    CYCLE_RE, FORMAT, SCHEMA_VERSION, STAGES, cycles_dir, digest, last_done, load_records, new_record, save_record,
)
