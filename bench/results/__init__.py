"""Result files: the schema and how they are written and read."""

from bench.results.schema import SCHEMA_VERSION, Result
from bench.results.store import ResultFileError, load_result, new_run_id, scan_results, write_result

__all__ = ["SCHEMA_VERSION", "Result", "ResultFileError", "load_result", "new_run_id", "scan_results", "write_result"]
