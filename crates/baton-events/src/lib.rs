//! The one publish path of Baton. A frame is appended to the event log (which assigns
//! its per-topic `seq`) and then handed to every subscriber's bounded queue. A
//! subscriber that cannot keep up is cut off, never waited for: publishers and other
//! subscribers do not slow down because of one slow socket.
#![forbid(unsafe_code)]

mod catchup;
mod hub;
mod snapshot;

pub use catchup::{plan, Catchup};
pub use hub::{ConnHandle, Delivery, EventHub, HubConfig};
pub use snapshot::{Snapshots, StoreSnapshots};
