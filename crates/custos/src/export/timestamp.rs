//! After sealing: RFC 3161 timestamps of the tag manifest (and of its signature) from the
//! TSAs given, first success wins, stored beside them as `<file>.tsr` (crate::tsa). Like the
//! signature, a token is outside what the tag manifest lists: it attests the sealed bag.

use super::context::Ctx;
use crate::error::Result;
pub use crate::tsa::Stamp;

/// Timestamps the tag manifest and the signature, where the TSAs were given and no valid token
/// for their current bytes is there yet. `Err` when no TSA timestamped one of them (a re-run
/// asks again).
pub(super) async fn stamp_all(ctx: &Ctx<'_>) -> Result<Vec<Stamp>> {
    crate::tsa::stamp_bag(&ctx.root, &ctx.cfg.tsa, None).await
}
