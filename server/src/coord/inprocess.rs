//! The in-process provider's own state: QuickConnect requests in memory. Leadership needs
//! none (the only replica always leads) and events are delivered by the coordinator itself.

use super::quickconnect::QuickConnect;

/// Shared state of a single replica.
#[derive(Debug)]
pub(super) struct InProcess {
    /// Pending QuickConnect requests.
    pub quick_connect: QuickConnect,
}

impl Default for InProcess {
    fn default() -> Self {
        InProcess {
            quick_connect: QuickConnect::new(true),
        }
    }
}
