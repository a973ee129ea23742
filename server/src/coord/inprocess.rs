//! The in-process provider's own state: QuickConnect requests and rate-limit windows in
//! memory. Leadership needs
//! none (the only replica always leads) and events are delivered by the coordinator itself.

use super::quickconnect::QuickConnect;
use super::ratelimit::RateCounters;

/// Shared state of a single replica.
#[derive(Debug)]
pub(super) struct InProcess {
    /// Pending QuickConnect requests.
    pub quick_connect: QuickConnect,
    /// Rate-limit windows.
    pub rates: RateCounters,
}

impl Default for InProcess {
    fn default() -> Self {
        InProcess {
            quick_connect: QuickConnect::new(true),
            rates: RateCounters::default(),
        }
    }
}
