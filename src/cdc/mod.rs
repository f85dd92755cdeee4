//! Stage 5: CDC directories (`cdc_raw`): `_cdc.idx` files, and what reads
//! segments only as far as Cassandra says they are durable.

mod idx;

pub use idx::{CdcIndex, IdxError, IdxState, MAX_IDX_LEN, parse_cdc_index, read_cdc_index};
