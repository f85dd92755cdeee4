"""CQL `date`, `time` and `duration` values, compatible with the DataStax
driver's `cassandra.util.Date`, `Time` and `Duration` (same constructors,
attributes and methods) without importing the driver:

- `Date(days | datetime.date | Date)`: `days_from_epoch`, `date()`;
- `Time(nanoseconds | datetime.time | Time)`: `nanosecond_time`, `hour`,
  `minute`, `second`, `nanosecond`, `time()`;
- `Duration(months=0, days=0, nanoseconds=0)`: `months`, `days`,
  `nanoseconds`.

(Native classes of the extension: creating one costs no Python call.)
"""

from ._native import Date, Duration, Time

__all__ = ["Date", "Duration", "Time"]
