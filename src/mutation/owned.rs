//! The owned form of a decoded mutation: its bytes as a [`Bytes`] (a view
//! into the memory map for plain segments), the schema behind an [`Arc`] and
//! its own records, so that it can be kept and sent across threads.

use std::sync::Arc;

use bytes::Bytes;
use serde::{Serialize, Serializer};

use super::decode::{Context, Decoder, Records};
use super::error::MutationError;
use super::view::Mutation;
use crate::schema::Schema;

/// A decoded mutation that owns what it needs (cheap to clone: the bytes
/// and the schema are shared).
#[derive(Clone)]
pub struct OwnedMutation {
    bytes: Bytes,
    schema: Arc<Schema>,
    records: Arc<Records>,
    ctx: Context,
    error: Option<Box<MutationError>>,
}

impl std::fmt::Debug for OwnedMutation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OwnedMutation")
            .field("segment_id", &self.ctx.segment_id)
            .field("position", &self.ctx.position)
            .field("updates", &self.records.updates.len())
            .field("error", &self.error)
            .finish()
    }
}

impl OwnedMutation {
    /// Decodes `bytes` with `decoder` and keeps the result. A mutation that
    /// fails to decode is kept too: [`error`](Self::error) says why, and
    /// [`view`](Self::view) has the updates decoded before the failure.
    pub fn decode(decoder: &mut Decoder, bytes: Bytes, schema: Arc<Schema>, ctx: Context) -> OwnedMutation {
        let error = decoder.decode(&bytes, &schema, ctx).err().map(|u| Box::new(u.error));
        let (records, ctx) = decoder.copy_records();
        OwnedMutation { bytes, schema, records: Arc::new(records), ctx, error }
    }

    /// A view of the mutation (complete, or the part decoded before an error).
    pub fn view(&self) -> Mutation<'_> {
        Mutation { bytes: &self.bytes, rec: &self.records, schema: &self.schema, ctx: &self.ctx }
    }

    /// Why the mutation did not decode completely, if it did not.
    pub fn error(&self) -> Option<&MutationError> {
        self.error.as_deref()
    }

    /// The serialized mutation.
    pub fn bytes(&self) -> &Bytes {
        &self.bytes
    }

    /// Where it came from.
    pub fn context(&self) -> &Context {
        &self.ctx
    }

    /// The schema it was decoded with.
    pub fn schema(&self) -> &Arc<Schema> {
        &self.schema
    }

    /// The content digest of each decoded partition update, in order
    /// ([`PartitionUpdate::digest`](super::PartitionUpdate::digest)): the
    /// key to drop the copies other replicas logged of the same write.
    pub fn digests(&self) -> impl ExactSizeIterator<Item = super::Digest> + '_ {
        self.view().updates().map(|u| u.digest())
    }
}

impl Serialize for OwnedMutation {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match &self.error {
            None => self.view().serialize(s),
            Some(error) => super::decode::Undecodable { partial: self.view(), error: (**error).clone() }.serialize(s),
        }
    }
}

#[cfg(test)]
mod tests {
    fn is_send_sync<T: Send + Sync + 'static>() {}

    #[test]
    fn owned_mutations_cross_threads() {
        is_send_sync::<super::OwnedMutation>();
    }
}
