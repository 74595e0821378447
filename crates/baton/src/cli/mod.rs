//! Client commands: `baton run`, `baton workflows`, `baton check`, `baton runs` and the
//! run controls.
pub mod check;
pub mod client;
pub mod control;
pub mod progress;
pub mod run;
