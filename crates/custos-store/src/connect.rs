//! The one place that knows every backend: a destination URL's [`Target`] to the backend that
//! serves it.

use crate::azure::AzureStore;
use crate::error::StoreError;
use crate::s3::S3Store;
use crate::store::{Backend, StoreOptions};
use crate::target::Target;

/// Connects to `target` with the standard credential chain of its cloud.
pub async fn connect(target: &Target, opts: &StoreOptions) -> Result<Box<dyn Backend>, StoreError> {
    Ok(match target {
        Target::S3 { bucket, .. } => Box::new(S3Store::connect(bucket, opts).await?),
        Target::Azure {
            account, container, ..
        } => Box::new(AzureStore::connect(account, container, opts)?),
    })
}
