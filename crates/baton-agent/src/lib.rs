//! The agent runtime: sessions that call models, run the tools they ask for, trace every
//! call and snapshot themselves at every turn boundary.
#![forbid(unsafe_code)]

pub mod tools;
