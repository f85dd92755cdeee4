//! Stage 2: mutations. A [`Decoder`] turns an entry's bytes into partition
//! updates, rows, cells and range tombstones (format spec §7–§9), viewed
//! through [`Mutation`] and kept with [`OwnedMutation`]. The [`vint`] module
//! has Cassandra's variable-length integers.

mod change;
pub mod debezium;
mod decode;
mod dedup;
mod digest;
mod error;
mod json;
mod owned;
mod view;
pub mod vint;
mod write;

pub use change::{Change, ChangeKind, CollectionKind, Element, FieldName, Merged, PrimaryKey};
pub use decode::{
    Context, DELETION_TIME_EPOCH, Decoded, Decoder, DeletionTime, Liveness, TIMESTAMP_EPOCH, Undecodable,
};
pub use dedup::{BYTES_PER_PAIR, Dedup};
pub use digest::Digest;
pub use error::{DecodeError, MutationError};
pub use owned::OwnedMutation;
pub use view::{
    Bound, Cell, CellPath, ColumnData, Marker, Mutation, PartitionKey, PartitionUpdate, RangeTombstone, Row,
    RowDeletion,
};
pub use write::ChangeWriter;
