//! What a subscriber gets before live frames: a replay of what it missed, or a snapshot.
use baton_store::TopicBounds;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Catchup {
    /// Send every stored frame with `seq > after`, then live frames.
    Replay { after: i64 },
    /// Send the current state tagged with `seq`; `reset` tells a client that asked for
    /// a replay that what it missed is no longer kept, so it must rebuild its view.
    Snapshot { seq: i64, reset: bool },
}

pub fn plan(bounds: TopicBounds, since: Option<i64>) -> Catchup {
    match since {
        None => Catchup::Snapshot {
            seq: bounds.last_seq,
            reset: false,
        },
        // Everything after `n` is still stored: frames n+1 .. last_seq.
        Some(n) if n >= bounds.first_kept - 1 && n <= bounds.last_seq => {
            Catchup::Replay { after: n }
        }
        // Pruned past `n`, or `n` is from the future (another database, a forged value).
        Some(_) => Catchup::Snapshot {
            seq: bounds.last_seq,
            reset: true,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(first_kept: i64, last_seq: i64) -> TopicBounds {
        TopicBounds {
            last_seq,
            first_kept,
        }
    }

    #[test]
    fn replays_while_everything_missed_is_kept() {
        assert_eq!(plan(b(1, 0), Some(0)), Catchup::Replay { after: 0 });
        assert_eq!(plan(b(1, 10), Some(0)), Catchup::Replay { after: 0 });
        assert_eq!(plan(b(5, 10), Some(4)), Catchup::Replay { after: 4 });
        assert_eq!(plan(b(5, 10), Some(10)), Catchup::Replay { after: 10 });
    }

    #[test]
    fn resets_when_frames_were_pruned_or_seq_is_unknown() {
        assert_eq!(
            plan(b(5, 10), Some(3)),
            Catchup::Snapshot {
                seq: 10,
                reset: true
            }
        );
        assert_eq!(
            plan(b(1, 10), Some(11)),
            Catchup::Snapshot {
                seq: 10,
                reset: true
            }
        );
        assert_eq!(
            plan(b(1, 10), Some(-1)),
            Catchup::Snapshot {
                seq: 10,
                reset: true
            }
        );
    }

    #[test]
    fn no_since_means_snapshot() {
        assert_eq!(
            plan(b(1, 7), None),
            Catchup::Snapshot {
                seq: 7,
                reset: false
            }
        );
    }
}
