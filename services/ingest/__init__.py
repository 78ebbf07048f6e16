"""Ingestion of CSV and Parquet files into a site's component tables.

One file is one transaction: the file is read in batches (pyarrow; every CSV value as a
string, so problems can quote the exact text), each column is parsed and checked with
vectorised code, and only a file without problems (or with its bad rows set aside when the
caller asks for `skip_bad_rows`) reaches `SiteStore.write_frame`, which upserts on the
natural key. Re-ingesting a file therefore changes nothing.

Decisions (documented here because tests and users rely on them):

* Columns match the reflected table case-insensitively (API lower case and the original's
  upper case both work). Unknown, duplicated and missing key columns are file-level
  problems: they fail the file even with `skip_bad_rows`.
* NULL is an empty field or one of NULL_TOKENS. A column absent from the file is NULL.
* Timestamps: ISO 8601 `YYYY-MM-DD[T ]HH:MM:SS[.fff][offset]`, offset `Z`, `±HH`, `±HHMM` or
  `±HH:MM` (honoured); naive values are the site's local time (`site.timezone`); a local time
  that does not exist or is ambiguous (DST) is a problem. A fraction must be zero: the natural
  key is per second, and flooring `10:00:00.6` would silently merge two samples into one key,
  so a non-zero fraction is reported ("fractional seconds"). Parquet timestamp columns follow
  the same rules (tz-aware honoured, naive = site local time).
* Numbers: decimal text as pyarrow parses it (`1`, `-2.5`, `1e3`); `inf` is "not a finite
  number"; integer columns accept `1` and `1.0` but not `1.5`. Ranges: see `get_range`.
* Keys: BANK_ID must be a bank of the site, (BANK_ID, RACK_ID) a rack of the site.
* Locations: CSV problems name the 1-based physical line (header = line 1, quoted newlines
  counted); Parquet problems name `row N` (1-based data row) or `schema`.
* Rows repeating a key inside the file: the last one wins (as `write_frame` does); the count is
  in the report and a warning names the first few superseded lines.
"""
