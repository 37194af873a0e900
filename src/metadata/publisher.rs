//! What reacts to committed metadata (Kafka's MetadataPublisher, fed by its MetadataLoader):
//! after each batch of records is appended to the metadata log and replayed, every publisher
//! is given the delta (what changed) and the new image, in the order they subscribed. The log
//! manager comes first, so the others find the logs as the image describes them.
//!
//! Publishers run under the catalog's change lock, in the order of the log: a publisher must
//! not commit metadata itself (that would wait on the lock it runs under).

use super::image::{MetadataDelta, MetadataImage};
use super::Catalog;

pub trait MetadataPublisher: Send + Sync {
    /// For logs.
    fn name(&self) -> &'static str;

    /// One committed batch: `delta` says what changed, `image` is the metadata after it.
    fn on_metadata_update(&self, catalog: &Catalog, delta: &MetadataDelta, image: &MetadataImage);
}
