"""Protection-map monitoring: events, alarm episodes and their queries.

Two sources of events, one error-code table (the original system's codes 1-14):

* `threshold`: every rack sample judged against the site's protection map by the eight
  checks of the original's threshold table (over/under-voltage, voltage gap, charge and discharge
  over-current on the *absolute* current split by its sign, over/under-temperature,
  temperature gap). Level 1 = warning, 2 = fault; one rule everywhere: an event when the
  value is strictly beyond the limit. Each check carries the BMS code of the same
  condition (over-voltage -> 6, ...), so both sources share codes.
* `bms`: every BMS warning/fault flag that is set in a rack row (codes 1-13), and the
  master-rack communication fault of a bank row (code 14, rack_id 0), including the
  per-rack flags of site 1 and the JSON object of sites 2/3.

Events are grouped into episodes per (site, bank, rack, error code, level, source): an
episode starts at an event and goes on while the next event follows within the quiet gap
(ESS_EPISODE_GAP_S, default 60 s); it keeps start, end (time of its last event), peak
value and sample count. An episode is open while a later run may still extend it.

Evaluation is incremental: a watermark per (site, component) holds the newest TIMESTAMP
judged; a run reads only newer rows, in time windows of about CHUNK_ROWS rows, and commits
events, per-minute event counts, episodes and the watermark of each window in one
transaction (compare-and-set on the watermark, so two evaluators cannot judge the same rows
twice). The database filters each window with the least strict limit of every check and
"flag set" (set-based, in C), numpy assigns levels, codes and texts to the rows that pass;
nothing loops per sample in Python. Rows that arrive later with a TIMESTAMP at or before the
watermark are judged only after `rewind_site` (CLI: `ess evaluate --since`; the ingest
command does it for the files it loads). Routes call `refresh_site` to judge a small
backlog (live rows) before they read.

Not turned into events (no code in the original's table): the bank copies of the rack flags
(an OR over racks, which would double every rack event), RACK_MODULE_FAULT and the tray
voltage-imbalance warnings.
"""
