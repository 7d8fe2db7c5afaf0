"""Excel workbooks written from query results: plain functions over rows, returning bytes or files.

No Telegram and no database here: `exports.xlsx` holds the shared xlsxwriter helpers (formats, safe
text, table sheets, print setup), `exports.reports` lays out the compiled reports, and
`exports.worker` runs a report's writing in a worker process (or thread) fed with rows as they stream.
"""
