//! CQL `date`, `time` and `duration` values, compatible with the DataStax
//! driver's `cassandra.util.Date`, `Time` and `Duration` (same
//! constructors, attributes and methods), without importing the driver.
//! Native classes: a change of the benchmark captures holds one of them, and
//! a Python `__init__` a value cost more than the rest of its conversion.

use pyo3::basic::CompareOp;
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;

const NANOS_PER_DAY: i64 = 86_400_000_000_000;

/// Days since 1970-01-01 of a civil date (proleptic Gregorian).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The civil date of days since 1970-01-01.
pub fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn is_py_date(v: &Bound<'_, PyAny>) -> PyResult<bool> {
    let py = v.py();
    let datetime = py.import("datetime")?;
    Ok(v.is_instance(&datetime.getattr("date")?)? && !v.is_instance(&datetime.getattr("datetime")?)?)
}

/// An `int` (not a `bool`) that fits an i64.
fn plain_int(v: &Bound<'_, PyAny>) -> Option<i64> {
    if v.is_instance_of::<pyo3::types::PyBool>() { None } else { v.extract().ok() }
}

/// A comparison's result: `NotImplemented` for a type the value does not
/// compare with (`other` is None), else the boolean `op` gives.
fn compare(py: Python<'_>, mine: i64, other: Option<i64>, op: CompareOp) -> PyResult<PyObject> {
    let Some(o) = other else { return Ok(py.NotImplemented()) };
    Ok(op.matches(mine.cmp(&o)).into_pyobject(py)?.to_owned().into_any().unbind())
}

/// A CQL `date`: days since 1970-01-01 (any of 2^32 days, beyond what
/// `datetime.date` holds).
#[pyclass(module = "cassandra_commitlog", frozen)]
pub struct Date {
    #[pyo3(get)]
    days_from_epoch: i64,
}

impl Date {
    pub fn from_days(days: i64) -> Date {
        Date { days_from_epoch: days }
    }

    fn days_of(v: &Bound<'_, PyAny>) -> PyResult<Option<i64>> {
        if let Ok(d) = v.downcast::<Date>() {
            return Ok(Some(d.get().days_from_epoch));
        }
        if is_py_date(v)? {
            let (y, m, d): (i64, i64, i64) =
                (v.getattr("year")?.extract()?, v.getattr("month")?.extract()?, v.getattr("day")?.extract()?);
            return Ok(Some(days_from_civil(y, m, d)));
        }
        Ok(plain_int(v))
    }
}

#[pymethods]
impl Date {
    #[new]
    fn new(value: &Bound<'_, PyAny>) -> PyResult<Date> {
        Date::days_of(value)?
            .map(Date::from_days)
            .ok_or_else(|| PyTypeError::new_err("Date(days | datetime.date | Date)"))
    }

    /// The `datetime.date` (ValueError outside years 1 to 9999).
    fn date<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let (y, m, d) = civil_from_days(self.days_from_epoch);
        if !(1..=9999).contains(&y) {
            return Err(PyValueError::new_err(format!(
                "date {} days from the epoch is outside datetime.date",
                self.days_from_epoch
            )));
        }
        py.import("datetime")?.getattr("date")?.call1((y, m, d))
    }

    fn __richcmp__(&self, other: &Bound<'_, PyAny>, op: CompareOp) -> PyResult<PyObject> {
        compare(other.py(), self.days_from_epoch, Date::days_of(other)?, op)
    }

    fn __hash__(&self) -> u64 {
        self.days_from_epoch as u64
    }

    fn __str__(&self) -> String {
        let (y, m, d) = civil_from_days(self.days_from_epoch);
        if (1..=9999).contains(&y) { format!("{y:04}-{m:02}-{d:02}") } else { self.days_from_epoch.to_string() }
    }

    fn __repr__(&self) -> String {
        format!("Date({})", self.days_from_epoch)
    }
}

/// A CQL `time`: nanoseconds since midnight.
#[pyclass(module = "cassandra_commitlog", frozen)]
pub struct Time {
    #[pyo3(get)]
    nanosecond_time: i64,
}

impl Time {
    pub fn from_nanos(ns: i64) -> Time {
        Time { nanosecond_time: ns }
    }

    fn nanos_of(v: &Bound<'_, PyAny>) -> PyResult<Option<i64>> {
        if let Ok(t) = v.downcast::<Time>() {
            return Ok(Some(t.get().nanosecond_time));
        }
        let py = v.py();
        if v.is_instance(&py.import("datetime")?.getattr("time")?)? {
            let part = |n: &str| -> PyResult<i64> { v.getattr(n)?.extract() };
            let secs = part("hour")? * 3600 + part("minute")? * 60 + part("second")?;
            return Ok(Some(secs * 1_000_000_000 + part("microsecond")? * 1000));
        }
        Ok(plain_int(v))
    }
}

#[pymethods]
impl Time {
    #[new]
    fn new(value: &Bound<'_, PyAny>) -> PyResult<Time> {
        let ns =
            Time::nanos_of(value)?.ok_or_else(|| PyTypeError::new_err("Time(nanoseconds | datetime.time | Time)"))?;
        if !(0..NANOS_PER_DAY).contains(&ns) {
            return Err(PyValueError::new_err(format!("time {ns} ns is not within a day")));
        }
        Ok(Time::from_nanos(ns))
    }

    #[getter]
    fn hour(&self) -> i64 {
        self.nanosecond_time / 3_600_000_000_000
    }

    #[getter]
    fn minute(&self) -> i64 {
        self.nanosecond_time / 60_000_000_000 % 60
    }

    #[getter]
    fn second(&self) -> i64 {
        self.nanosecond_time / 1_000_000_000 % 60
    }

    #[getter]
    fn nanosecond(&self) -> i64 {
        self.nanosecond_time % 1_000_000_000
    }

    /// The `datetime.time` (microseconds: the nanoseconds below are cut).
    fn time<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let args = (self.hour(), self.minute(), self.second(), self.nanosecond() / 1000);
        py.import("datetime")?.getattr("time")?.call1(args)
    }

    fn __richcmp__(&self, other: &Bound<'_, PyAny>, op: CompareOp) -> PyResult<PyObject> {
        compare(other.py(), self.nanosecond_time, Time::nanos_of(other)?, op)
    }

    fn __hash__(&self) -> u64 {
        self.nanosecond_time as u64
    }

    fn __str__(&self) -> String {
        format!("{:02}:{:02}:{:02}.{:09}", self.hour(), self.minute(), self.second(), self.nanosecond())
    }

    fn __repr__(&self) -> String {
        format!("Time({})", self.nanosecond_time)
    }
}

/// A CQL `duration`: months, days and nanoseconds, each with its own sign.
#[pyclass(module = "cassandra_commitlog", frozen)]
pub struct Duration {
    #[pyo3(get)]
    months: i64,
    #[pyo3(get)]
    days: i64,
    #[pyo3(get)]
    nanoseconds: i64,
}

impl Duration {
    pub fn of(months: i64, days: i64, nanoseconds: i64) -> Duration {
        Duration { months, days, nanoseconds }
    }
}

#[pymethods]
impl Duration {
    #[new]
    #[pyo3(signature = (months=0, days=0, nanoseconds=0))]
    fn new(months: i64, days: i64, nanoseconds: i64) -> Duration {
        Duration::of(months, days, nanoseconds)
    }

    fn __richcmp__(&self, other: &Bound<'_, PyAny>, op: CompareOp) -> PyResult<PyObject> {
        let py = other.py();
        let Ok(o) = other.downcast::<Duration>() else { return Ok(py.NotImplemented()) };
        let o = o.get();
        let same = (self.months, self.days, self.nanoseconds) == (o.months, o.days, o.nanoseconds);
        Ok(match op {
            CompareOp::Eq => same.into_pyobject(py)?.to_owned().into_any().unbind(),
            CompareOp::Ne => (!same).into_pyobject(py)?.to_owned().into_any().unbind(),
            _ => py.NotImplemented(),
        })
    }

    fn __hash__(&self) -> u64 {
        (self.months as u64)
            .wrapping_mul(31)
            .wrapping_add(self.days as u64)
            .wrapping_mul(31)
            .wrapping_add(self.nanoseconds as u64)
    }

    fn __repr__(&self) -> String {
        format!("Duration({}, {}, {})", self.months, self.days, self.nanoseconds)
    }

    fn __str__(&self) -> String {
        self.__repr__()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates_round_trip() {
        for days in [-719_468 - 366, -1, 0, 1, 19_675, 2_932_896, 1 << 31, -(1 << 31)] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days, "{days}");
        }
        assert_eq!(civil_from_days(19_675), (2023, 11, 14));
        assert_eq!(civil_from_days(0), (1970, 1, 1));
    }
}
