//! CQL values to Python objects, as the DataStax `cassandra-driver` gives
//! them, exactly (never through a float where the type is not one).

use cassandra_commitlog::value::Value;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::sync::GILOnceCell;
use pyo3::types::{PyBytes, PyDict, PyFrozenSet, PyList, PySet, PyTuple};

/// Python classes the conversion builds, imported once.
pub struct Classes {
    decimal: PyObject,
    uuid: PyObject,
    /// `uuid.SafeUUID.unknown`, what `UUID(bytes=...)` sets.
    uuid_safe: PyObject,
    /// `object.__new__` and the `__set__` of `UUID`'s two slots: a UUID is
    /// made without its `__init__` (a third of the time).
    new: PyObject,
    set_int: PyObject,
    set_is_safe: PyObject,
    /// `int.from_bytes`: under the stable ABI, one call where PyO3 makes
    /// a 128-bit int of five.
    from_bytes: PyObject,
    big: PyObject,
    datetime: PyObject,
    ipv4: PyObject,
    ipv6: PyObject,
}

static CLASSES: GILOnceCell<Classes> = GILOnceCell::new();

/// The `__set__` of one of `uuid.UUID`'s slots.
fn slot_setter(py: Python<'_>, slot: &str) -> PyResult<PyObject> {
    let uuid = py.import("uuid")?.getattr("UUID")?;
    Ok(uuid.getattr("__dict__")?.get_item(slot)?.getattr("__set__")?.unbind())
}

pub fn classes(py: Python<'_>) -> PyResult<&Classes> {
    CLASSES.get_or_try_init(py, || {
        let get = |module: &str, name: &str| -> PyResult<PyObject> { Ok(py.import(module)?.getattr(name)?.unbind()) };
        Ok(Classes {
            decimal: get("decimal", "Decimal")?,
            uuid: get("uuid", "UUID")?,
            uuid_safe: get("uuid", "SafeUUID")?.getattr(py, "unknown")?,
            new: py.import("builtins")?.getattr("object")?.getattr("__new__")?.unbind(),
            set_int: slot_setter(py, "int")?,
            set_is_safe: slot_setter(py, "is_safe")?,
            from_bytes: py.get_type::<pyo3::types::PyInt>().getattr("from_bytes")?.unbind(),
            big: pyo3::types::PyString::intern(py, "big").into_any().unbind(),
            datetime: get("datetime", "datetime")?,
            ipv4: get("ipaddress", "IPv4Address")?,
            ipv6: get("ipaddress", "IPv6Address")?,
        })
    })
}

/// A value as a Python object.
pub fn value(py: Python<'_>, c: &Classes, v: &Value<'_>) -> PyResult<PyObject> {
    Ok(match v {
        Value::Empty => py.None(),
        Value::Ascii(s) | Value::Text(s) => s.into_pyobject(py)?.into_any().unbind(),
        Value::Int(n) => n.into_pyobject(py)?.into_any().unbind(),
        Value::BigInt(n) => n.into_pyobject(py)?.into_any().unbind(),
        Value::SmallInt(n) => n.into_pyobject(py)?.into_any().unbind(),
        Value::TinyInt(n) => n.into_pyobject(py)?.into_any().unbind(),
        Value::Varint(v) => varint(py, v.0)?,
        Value::Decimal(d) => c.decimal.call1(py, (d.to_string(),))?,
        Value::Float(f) => (*f as f64).into_pyobject(py)?.into_any().unbind(),
        Value::Double(f) => f.into_pyobject(py)?.into_any().unbind(),
        Value::Boolean(b) => b.into_pyobject(py)?.to_owned().into_any().unbind(),
        Value::Uuid(u) | Value::TimeUuid(u) => uuid(py, c, u.as_u128())?,
        Value::Timestamp(ms) => {
            // A naive UTC datetime, as the driver gives, made of its civil
            // date and time (exact, no float). Outside datetime's years 1
            // to 9999, the milliseconds as an int.
            let (days, in_day) = (ms.div_euclid(86_400_000), ms.rem_euclid(86_400_000));
            let (y, m, d) = crate::types::civil_from_days(days);
            if (1..=9999).contains(&y) {
                let (secs, milli) = (in_day / 1000, in_day % 1000);
                c.datetime.call1(py, (y, m, d, secs / 3600, secs / 60 % 60, secs % 60, milli * 1000))?
            } else {
                ms.into_pyobject(py)?.into_any().unbind()
            }
        }
        Value::Date(days) => Py::new(py, crate::types::Date::from_days(*days))?.into_any(),
        Value::Time(ns) => Py::new(py, crate::types::Time::from_nanos(*ns))?.into_any(),
        Value::Duration(d) => {
            Py::new(py, crate::types::Duration::of(d.months as i64, d.days as i64, d.nanoseconds))?.into_any()
        }
        Value::Inet(std::net::IpAddr::V4(a)) => c.ipv4.call1(py, (PyBytes::new(py, &a.octets()),))?,
        Value::Inet(std::net::IpAddr::V6(a)) => c.ipv6.call1(py, (PyBytes::new(py, &a.octets()),))?,
        Value::Blob(b) | Value::Custom(b) => PyBytes::new(py, b).into_any().unbind(),
        Value::Counter(ctx) => ctx.total().into_pyobject(py)?.into_any().unbind(),
        Value::List(items) | Value::Vector(items) => {
            let list = PyList::empty(py);
            for item in items.iter() {
                list.append(optional(py, c, item.map_err(err)?)?)?;
            }
            list.into_any().unbind()
        }
        Value::Set(items) => {
            let mut all = Vec::new();
            for item in items.iter() {
                all.push(optional(py, c, item.map_err(err)?)?);
            }
            set(py, all)?
        }
        Value::Map(entries) => {
            let dict = PyDict::new(py);
            for entry in entries.iter() {
                let (k, v) = entry.map_err(err)?;
                dict.set_item(key(py, optional(py, c, k)?)?, optional(py, c, v)?)?;
            }
            dict.into_any().unbind()
        }
        Value::Tuple(fields) => {
            let mut items = Vec::new();
            for (_, v) in fields.iter() {
                items.push(optional(py, c, v.map_err(err)?)?);
            }
            PyTuple::new(py, items)?.into_any().unbind()
        }
        Value::Udt(fields) => {
            let dict = PyDict::new(py);
            for (i, (name, v)) in fields.iter().enumerate() {
                let v = optional(py, c, v.map_err(err)?)?;
                match name {
                    Some(n) => dict.set_item(n, v)?,
                    None => dict.set_item(i, v)?,
                }
            }
            dict.into_any().unbind()
        }
        other => return Err(PyValueError::new_err(format!("no Python form for {other:?}"))),
    })
}

/// A value that may be null (`None`).
pub fn optional(py: Python<'_>, c: &Classes, v: Option<Value<'_>>) -> PyResult<PyObject> {
    match v {
        Some(v) => value(py, c, &v),
        None => Ok(py.None()),
    }
}

/// A `uuid.UUID` of 128 bits, made as `UUID(int=...)` makes it, without
/// its `__init__`'s checks (a Python call a UUID fewer).
pub fn uuid(py: Python<'_>, c: &Classes, value: u128) -> PyResult<PyObject> {
    let u = c.new.call1(py, (&c.uuid,))?;
    let int = c.from_bytes.call1(py, (PyBytes::new(py, &value.to_be_bytes()), &c.big))?;
    c.set_int.call1(py, (&u, int))?;
    c.set_is_safe.call1(py, (&u, &c.uuid_safe))?;
    Ok(u)
}

/// A `varint` of any length as a Python int.
pub fn varint(py: Python<'_>, bytes: &[u8]) -> PyResult<PyObject> {
    if let Some(n) = cassandra_commitlog::value::Varint(bytes).to_i128() {
        return Ok(n.into_pyobject(py)?.into_any().unbind());
    }
    let int = py.get_type::<pyo3::types::PyInt>();
    let kwargs = PyDict::new(py);
    kwargs.set_item("signed", true)?;
    Ok(int.call_method("from_bytes", (PyBytes::new(py, bytes), "big"), Some(&kwargs))?.unbind())
}

/// A set's elements as a Python `set`, or, when some element cannot be
/// hashed (a frozen collection), as a list in Cassandra's order.
fn set(py: Python<'_>, items: Vec<PyObject>) -> PyResult<PyObject> {
    let s = PySet::empty(py)?;
    for item in &items {
        if s.add(item).is_err() {
            return Ok(PyList::new(py, items)?.into_any().unbind());
        }
    }
    Ok(s.into_any().unbind())
}

/// A map key Python can hash: collections frozen (lists and tuples as
/// tuples, sets as frozensets, dicts as tuples of items), recursively.
pub fn key(py: Python<'_>, k: PyObject) -> PyResult<PyObject> {
    let b = k.bind(py);
    if let Ok(list) = b.downcast::<PyList>() {
        let items = list.iter().map(|i| key(py, i.unbind())).collect::<PyResult<Vec<_>>>()?;
        return Ok(PyTuple::new(py, items)?.into_any().unbind());
    }
    if let Ok(set) = b.downcast::<PySet>() {
        return Ok(PyFrozenSet::new(py, set.iter())?.into_any().unbind());
    }
    if let Ok(dict) = b.downcast::<PyDict>() {
        let mut items = Vec::new();
        for (k, v) in dict.iter() {
            items.push(PyTuple::new(py, [key(py, k.unbind())?, key(py, v.unbind())?])?.into_any().unbind());
        }
        return Ok(PyTuple::new(py, items)?.into_any().unbind());
    }
    Ok(k)
}

pub fn err(e: cassandra_commitlog::value::ValueError) -> PyErr {
    crate::error::value_error(e)
}
