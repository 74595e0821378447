//! Opaque keyset cursors. A cursor carries the sort key of the last row of a page;
//! clients must treat it as an opaque string. Decoding is strict so that a forged or
//! damaged cursor is a client error rather than a confused query.
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::{Deserialize, Serialize};

use crate::{time, Timestamp, TraceId};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid cursor: {0}")]
pub struct CursorError(pub &'static str);

/// Position after the trace with this `(turn_number, started_at, id)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceCursor {
    pub turn_number: i64,
    pub started_at: Timestamp,
    pub id: TraceId,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Wire {
    v: u8,
    t: i64,
    s: i64,
    i: uuid::Uuid,
}

const MAX_CURSOR_LEN: usize = 256;
/// 9999-12-31T23:59:59.999999Z.
const MAX_MICROS: i64 = 253_402_300_799_999_999;

impl TraceCursor {
    pub fn encode(&self) -> String {
        let wire = Wire {
            v: 1,
            t: self.turn_number,
            s: time::to_micros(&self.started_at),
            i: self.id.0,
        };
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(&wire).expect("cursor serializes"))
    }

    pub fn decode(s: &str) -> Result<Self, CursorError> {
        if s.is_empty() || s.len() > MAX_CURSOR_LEN {
            return Err(CursorError("wrong length"));
        }
        let bytes = URL_SAFE_NO_PAD
            .decode(s)
            .map_err(|_| CursorError("not base64url"))?;
        let wire: Wire =
            serde_json::from_slice(&bytes).map_err(|_| CursorError("unreadable content"))?;
        if wire.v != 1 {
            return Err(CursorError("unknown version"));
        }
        if wire.t < 0 {
            return Err(CursorError("negative turn number"));
        }
        // Both backends must be able to compare against it: Postgres stops at 294276 AD.
        if !(0..=MAX_MICROS).contains(&wire.s) {
            return Err(CursorError("timestamp out of range"));
        }
        let started_at = time::from_micros(wire.s).ok_or(CursorError("timestamp out of range"))?;
        Ok(Self {
            turn_number: wire.t,
            started_at,
            id: TraceId(wire.i),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let c = TraceCursor {
            turn_number: 3,
            started_at: time::now(),
            id: TraceId::new(),
        };
        assert_eq!(TraceCursor::decode(&c.encode()).unwrap(), c);
    }

    #[test]
    fn rejects_forgeries() {
        let forged = |json: &str| URL_SAFE_NO_PAD.encode(json.as_bytes());
        for bad in [
            String::new(),
            "!!!".to_string(),
            "x".repeat(1000),
            forged("{}"),
            forged(r#"{"v":2,"t":0,"s":0,"i":"0190c0de-0000-7000-8000-000000000000"}"#),
            forged(r#"{"v":1,"t":-1,"s":0,"i":"0190c0de-0000-7000-8000-000000000000"}"#),
            forged(
                r#"{"v":1,"t":0,"s":9223372036854775807,"i":"0190c0de-0000-7000-8000-000000000000"}"#,
            ),
            forged(r#"{"v":1,"t":0,"s":-1,"i":"0190c0de-0000-7000-8000-000000000000"}"#),
            forged(
                r#"{"v":1,"t":0,"s":253402300800000000,"i":"0190c0de-0000-7000-8000-000000000000"}"#,
            ),
            forged(r#"{"v":1,"t":0,"s":0,"i":"nope"}"#),
            forged(r#"{"v":1,"t":0,"s":0,"i":"0190c0de-0000-7000-8000-000000000000","x":1}"#),
        ] {
            assert!(TraceCursor::decode(&bad).is_err(), "accepted {bad}");
        }
    }
}
