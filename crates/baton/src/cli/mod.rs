//! Client commands: `baton run`, `baton workflows`, `baton check`.
pub mod check;
pub mod client;
pub mod progress;
pub mod run;
